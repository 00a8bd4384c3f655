"""Retention: delete published outbox rows older than OUTBOX_RETENTION_HOURS.

Small batches through the published_at index, so no long lock or transaction; the
relay's query reads only the partial index of unpublished rows, which deleted rows
were never in, so its cost does not grow with the table.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_DELETE_BATCH = text(
    """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
        WHERE published_at IS NOT NULL
          AND published_at < now() - make_interval(secs => :age_s)
        ORDER BY published_at
        LIMIT :batch
    )
    """
)


async def delete_published(engine: AsyncEngine, *, age_s: float, batch: int) -> int:
    """Delete one batch; returns how many rows went (0 when caught up)."""
    async with engine.begin() as conn:
        result = await conn.execute(_DELETE_BATCH, {"age_s": age_s, "batch": batch})
        return int(result.rowcount)
