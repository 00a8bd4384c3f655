"""The migrations and the models agree: after `alembic upgrade head`, autogenerate
finds nothing to change."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, drop_database, recreate_database
from core.outbox_store import OutboxStore
from core.settings import Settings
from core.tables import Base
from migrations import alembic_config, upgrade


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


async def test_migration_0005_keeps_every_outbox_row_and_the_relay_reads_it(
    settings: Settings,
) -> None:
    """payload and headers go from jsonb to json with the same JSON in every row, and
    back on downgrade; an unpublished row written before is fetched as before."""
    name = f"connectin_m5_{uuid.uuid4().hex[:8]}"
    db = await recreate_database(settings.database, name)
    try:
        await asyncio.to_thread(upgrade, db.url, "0004")
        payload = {"event_id": "e1", "sequence": 7, "data": {"title": "ünï", "n": [1, 2.5]}}
        headers = {"ce_id": "e1", "content-type": "application/json"}
        conn = await asyncpg.connect(db.libpq_url)
        try:
            await conn.execute(
                "INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type,"
                " aggregate_id, sequence, payload, headers, shard)"
                " VALUES (gen_random_uuid(), 't', 'k', 'x.y', 'agg', '1', 7,"
                " $1::jsonb, $2::jsonb, 0)",
                json.dumps(payload),
                json.dumps(headers),
            )
            await asyncio.to_thread(upgrade, db.url)
            types = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'outbox' AND column_name IN ('payload', 'headers')"
            )
            assert {r["column_name"]: r["data_type"] for r in types} == {
                "payload": "json",
                "headers": "json",
            }
            engine = create_engine(db, application_name="test-migration-0005")
            try:
                (row,) = await OutboxStore(engine).fetch(0, 10)
            finally:
                await engine.dispose()
            assert json.loads(row.value) == payload
            assert row.headers == headers
            await asyncio.to_thread(command.downgrade, alembic_config(db.url), "0004")
            back = await conn.fetchrow("SELECT payload::text, headers::text FROM outbox")
            assert back is not None
            assert json.loads(back[0]) == payload
            assert json.loads(back[1]) == headers
            assert await conn.fetchval("SELECT pg_typeof(payload)::text FROM outbox") == "jsonb"
        finally:
            await conn.close()
    finally:
        await drop_database(settings.database, name)
