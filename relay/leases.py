"""Shard leadership: a session-level advisory lock per shard, all held on one dedicated
connection. If that connection dies, Postgres releases the locks and another relay
takes the shards; we notice on the next check and stop producing for them at once.

A relay can also stop making progress with its connection still open (SIGSTOP, an
event loop blocked by a bug, a VM paused): its locks would then be held for as long as
it is frozen. So a live relay's lease connection beats (a trivial query at least every
RELAY_LEASE_TIMEOUT_MS / 4), and every relay, on each check, terminates the lease
backend of any holder of this deployment's locks that has been idle longer than
RELAY_LEASE_TIMEOUT_MS. pg_terminate_backend releases the session's advisory locks, so
the shards are free at once. When the frozen relay wakes it is fenced: the new leader's
init_transactions() bumped the producer epoch (its commit fails), and its lease
connection is gone (its next check drops every shard).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import NullPool, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.db_errors import DATABASE_ERRORS, is_transient
from core.leadership import connected_relays, lock_namespace, relay_application_name
from core.settings import Settings

T = TypeVar("T")

# How long pg_terminate_backend waits for the backend to exit (and free its locks).
TERMINATE_WAIT_MS = 2000

_STALE_HOLDERS = text(
    """
    WITH stale AS (
        SELECT a.pid,
               extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS idle_s,
               array_agg(l.objid::int ORDER BY l.objid) AS shards
        FROM pg_locks AS l
        JOIN pg_stat_activity AS a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = CAST(:ns AS int)::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND a.pid <> pg_backend_pid()
          AND a.state = 'idle'
          AND a.state_change < clock_timestamp() - make_interval(secs => :timeout_s)
        GROUP BY a.pid, a.state_change
    )
    SELECT pid, idle_s, shards, pg_terminate_backend(pid, :wait_ms) AS gone FROM stale
    """
)


@dataclass(frozen=True)
class Evicted:
    pid: int
    idle_s: float
    shards: list[int]
    gone: bool


class ShardLeases:
    def __init__(self, engine: AsyncEngine, conn: AsyncConnection, prefix: str):
        self._engine = engine
        self._conn = conn
        self._prefix = prefix
        self._namespace = lock_namespace(prefix)
        # The heartbeat and the lease checks share the connection; one query at a time.
        self._lock = asyncio.Lock()
        # The first connection-level error, re-raised by every later call: whoever
        # meets it first (often the heartbeat), the lease loop sees the real cause,
        # not SQLAlchemy's "invalid transaction" that follows it.
        self._broken: BaseException | None = None

    async def _run(self, statement: TextClause, params: Mapping[str, Any] | None = None) -> Any:
        return await self._on_conn(lambda conn: conn.execute(statement, params))

    async def _on_conn(self, op: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._lock:
            if self._broken is not None:
                raise self._broken
            try:
                return await op(self._conn)
            except DATABASE_ERRORS as exc:
                if is_transient(exc):
                    self._broken = exc
                raise

    @classmethod
    async def open(cls, settings: Settings) -> ShardLeases:
        prefix = settings.kafka.transactional_id_prefix
        app = relay_application_name(prefix)
        # NullPool: closing the connection really disconnects, which is what releases
        # the session locks; a pooled connection would keep them alive.
        engine = create_async_engine(
            settings.database.url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": app}},
        )
        conn = await engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return cls(engine, conn, prefix)

    async def try_acquire(self, shard: int) -> bool:
        result = await self._run(
            text("SELECT pg_try_advisory_lock(:ns, :shard)"),
            {"ns": self._namespace, "shard": shard},
        )
        return bool(result.scalar_one())

    async def release(self, shard: int) -> None:
        await self._run(
            text("SELECT pg_advisory_unlock(:ns, :shard)"),
            {"ns": self._namespace, "shard": shard},
        )

    async def held(self) -> set[int]:
        """Shards whose lock this session really holds; raises if the connection died."""
        result = await self._run(
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
        connected = await self._on_conn(lambda conn: connected_relays(conn, self._prefix))
        return max(1, connected)

    async def beat(self) -> None:
        """Show Postgres this relay is alive (its backend's state_change moves)."""
        await self._run(text("SELECT 1"))

    async def evict_stale(self, timeout_s: float) -> list[Evicted]:
        """Terminate the lease backends of this deployment's holders idle longer than
        `timeout_s` (frozen relays); returns whom, so the caller can log it."""
        result = await self._run(
            _STALE_HOLDERS,
            {"ns": self._namespace, "timeout_s": timeout_s, "wait_ms": TERMINATE_WAIT_MS},
        )
        return [
            Evicted(int(r.pid), float(r.idle_s), [int(s) for s in r.shards], bool(r.gone))
            for r in result
        ]

    async def close(self) -> None:
        async with self._lock:
            try:
                await self._conn.close()
            finally:
                await self._engine.dispose()
