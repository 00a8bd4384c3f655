"""Shard leadership: a session-level advisory lock per shard, all held on one dedicated
connection. If that connection dies, Postgres releases the locks and another relay
takes the shards; we notice on the next check and stop producing for them at once."""

from __future__ import annotations

from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.leadership import lock_namespace
from core.settings import Settings


class ShardLeases:
    def __init__(self, engine: AsyncEngine, conn: AsyncConnection, namespace: int, app: str):
        self._engine = engine
        self._conn = conn
        self._namespace = namespace
        self._app = app

    @classmethod
    async def open(cls, settings: Settings) -> ShardLeases:
        app = f"connectin-relay:{settings.kafka.transactional_id_prefix}"[:63]
        # NullPool: closing the connection really disconnects, which is what releases
        # the session locks; a pooled connection would keep them alive.
        engine = create_async_engine(
            settings.database.url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": app}},
        )
        conn = await engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return cls(engine, conn, lock_namespace(settings.kafka.transactional_id_prefix), app)

    async def try_acquire(self, shard: int) -> bool:
        result = await self._conn.execute(
            text("SELECT pg_try_advisory_lock(:ns, :shard)"),
            {"ns": self._namespace, "shard": shard},
        )
        return bool(result.scalar_one())

    async def release(self, shard: int) -> None:
        await self._conn.execute(
            text("SELECT pg_advisory_unlock(:ns, :shard)"),
            {"ns": self._namespace, "shard": shard},
        )

    async def held(self) -> set[int]:
        """Shards whose lock this session really holds; raises if the connection died."""
        result = await self._conn.execute(
            text(
                "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND objsubid = 2 "
                "AND classid = CAST(:ns AS int)::oid"
            ),
            {"ns": self._namespace},
        )
        return {int(r[0]) for r in result}

    async def live_relays(self) -> int:
        """Relays of this deployment connected right now (their lease connections)."""
        result = await self._conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"
            ),
            {"app": self._app},
        )
        return max(1, int(result.scalar_one()))

    async def close(self) -> None:
        try:
            await self._conn.close()
        finally:
            await self._engine.dispose()
