"""Retention: delete published outbox rows created more than OUTBOX_RETENTION_HOURS ago.

It walks the table from its oldest id in small batches (a keyset over the primary key),
so each statement is short and there is no index to maintain for it: an index on
`published_at` made every mark ~25% dearer (each mark is a non-HOT update that writes
every index), for a job that runs once a minute. Ids follow insertion time, so the walk
stops at the first batch that reaches recent rows. Old rows that are still unpublished
are stepped over, never deleted. The relay's own query reads only the partial index of
unpublished rows, so the table's size does not slow it (bench/growth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_DELETE_BATCH = text(
    """
    WITH head AS (
        SELECT id, created_at, published_at FROM outbox
        WHERE id > :after
        ORDER BY id
        LIMIT :batch
    ), deleted AS (
        DELETE FROM outbox AS o USING head
        WHERE o.id = head.id
          AND head.published_at IS NOT NULL
          AND head.created_at < now() - make_interval(secs => :age_s)
        RETURNING o.id
    )
    SELECT (SELECT count(*) FROM deleted) AS deleted,
           (SELECT max(id) FROM head) AS last_id,
           coalesce((SELECT bool_or(created_at >= now() - make_interval(secs => :age_s))
                     FROM head), true) AS reached_recent
    """
)


@dataclass(frozen=True)
class RetentionRun:
    deleted: int
    batches: int


async def delete_published(
    engine: AsyncEngine,
    *,
    age_s: float,
    batch: int,
    on_progress: Callable[[int], None] | None = None,
) -> RetentionRun:
    """One pass over the old end of the table; each batch is its own transaction."""
    after, deleted, batches = 0, 0, 0
    while True:
        async with engine.begin() as conn:
            row = (
                await conn.execute(_DELETE_BATCH, {"after": after, "batch": batch, "age_s": age_s})
            ).one()
        batches += 1
        deleted += int(row.deleted)
        if row.deleted and on_progress is not None:
            on_progress(deleted)
        if row.reached_recent or row.last_id is None:
            return RetentionRun(deleted=deleted, batches=batches)
        after = int(row.last_id)
