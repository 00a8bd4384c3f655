"""The relay's fetch reads the partial index of unpublished rows, however large the
table of published rows grows (a plan test, not a timing test)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from relay.outbox_store import _FETCH, _SHARDS_WITH_PENDING

FILL = """
INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                    sequence, payload, headers, shard, published_at)
SELECT gen_random_uuid(), 't', 'k:' || g, 'e', 'k', g::text, 1, '{}', '{"a": "b"}', g % 4,
       CASE WHEN g > 100000 THEN NULL ELSE now() END
FROM generate_series(1, 120000) AS g
"""


def plan_nodes(plan: dict[str, object]) -> list[dict[str, object]]:
    nodes = [plan]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        nodes.extend(plan_nodes(child))
    return nodes


async def explain(engine: AsyncEngine, sql: str, *args: object) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        doc = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    # SQLAlchemy registers a JSON codec on its asyncpg connections; plain asyncpg does not.
    parsed = doc if isinstance(doc, list) else json.loads(doc)
    return plan_nodes(parsed[0]["Plan"])


async def test_fetch_uses_the_partial_index_on_a_skewed_table(clean_db: AsyncEngine) -> None:
    # 100,000 published rows with low ids, 20,000 unpublished at the end: the shape on
    # which a plain `shard = $1 ORDER BY id` walks the primary key and filters.
    async with clean_db.begin() as conn:
        await conn.exec_driver_sql(FILL)
    async with clean_db.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE outbox")
    nodes = await explain(clean_db, _FETCH, [1], 1000)
    assert {n["Index Name"] for n in nodes if "Index Name" in n} == {"ix_outbox_unpublished"}
    watch = await explain(clean_db, _SHARDS_WITH_PENDING, [0, 1, 2, 3])
    assert {n["Index Name"] for n in watch if "Index Name" in n} == {"ix_outbox_unpublished"}
