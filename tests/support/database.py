"""Emptying the schema between tests that count rows."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.tables import Base

# The models' tables: tests/integration/test_migrations.py proves they are exactly
# the tables the migrations create, so none is left out.
TABLES = tuple(Base.metadata.tables)


async def truncate_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
