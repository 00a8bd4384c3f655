"""Retention deletes published rows older than the retention age, and nothing else:
not recent published rows, not old rows still waiting to be published."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.retention import delete_published

FILL = """
INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                    sequence, payload, headers, shard, created_at, published_at)
SELECT gen_random_uuid(), 't', 'k:' || g, 'e', 'k', g::text, 1, '{}', '{}', g % 4,
       now() - make_interval(hours => :hours), :published
FROM generate_series(1, :n) AS g
"""


async def fill(engine: AsyncEngine, n: int, hours: float, published: bool) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            FILL.replace(":hours", str(hours))
            .replace(":published", "now()" if published else "NULL")
            .replace(":n", str(n))
        )


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE published_at IS NOT NULL AND "
                    "created_at < now() - interval '10 hours'),"
                    " count(*) FILTER (WHERE published_at IS NULL),"
                    " count(*) FILTER (WHERE created_at > now() - interval '10 hours') FROM outbox"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_retention_deletes_only_old_published_rows(clean_db: AsyncEngine) -> None:
    await fill(clean_db, 2_500, hours=50, published=True)
    await fill(clean_db, 7, hours=49, published=False)  # old but still pending
    await fill(clean_db, 2_500, hours=30, published=True)
    await fill(clean_db, 300, hours=1, published=True)  # recent
    await fill(clean_db, 40, hours=0, published=False)
    progress: list[int] = []
    run = await delete_published(clean_db, age_s=20 * 3600, batch=1000, on_progress=progress.append)
    assert run.deleted == 5_000
    assert progress[-1] == 5_000 and progress == sorted(progress)
    old_published, pending, recent = await counts(clean_db)
    assert (old_published, pending, recent) == (0, 47, 340)
    # Caught up: a second pass deletes nothing and stops at the recent rows at once.
    again = await delete_published(clean_db, age_s=20 * 3600, batch=1000)
    assert again.deleted == 0
    assert again.batches == 1
