"""The migrations and the models agree: after `alembic upgrade head`, autogenerate
finds nothing to change."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.tables import Base


async def test_models_match_migrations(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_outbox_has_partial_index_on_unpublished(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        indexdef = (
            await conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_outbox_unpublished'"
            )
        ).scalar_one()
    assert "WHERE (published_at IS NULL)" in indexdef
