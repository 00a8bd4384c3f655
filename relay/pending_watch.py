"""Wake-up for idle shards: one cheap query for all of them, adaptive from 1 ms to
RELAY_IDLE_POLL_MS, instead of one poll per shard.

Why polling and not LISTEN/NOTIFY: NOTIFY takes a database-wide lock at commit, which
serializes every writer's commit; `bench/wakeup.py` measures what that costs the API
against what polling costs Postgres and the latency each gives.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db_errors import DATABASE_ERRORS
from core.lifecycle import StopSignal
from core.outbox_store import OutboxStore
from relay.db_errors import report

log = structlog.get_logger(__name__)

MIN_INTERVAL_S = 0.001
PERMANENT_ERROR_PAUSE_S = 5.0


class PendingWatch:
    def __init__(self, store: OutboxStore, max_interval_s: float, stop: StopSignal) -> None:
        self._store = store
        self._stop = stop
        self._max_interval_s = max_interval_s
        self._waiting: dict[int, asyncio.Event] = {}
        self._someone_waits = asyncio.Event()

    def register(self, shard: int) -> asyncio.Event:
        """An event set when `shard` has unpublished rows (or the query failed: the
        worker then meets the error itself and applies its own backoff)."""
        event = self._waiting.setdefault(shard, asyncio.Event())
        self._someone_waits.set()
        return event

    def unregister(self, shard: int) -> None:
        self._waiting.pop(shard, None)

    async def run(self) -> None:
        """Ends at its next pause once `stop` is set, never in the middle of a query."""
        while not self._stop.stopping:
            try:
                async with self._store.engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await self._watch(conn)
            except DATABASE_ERRORS as exc:
                transient = report(exc, "pending check failed", "pending-watch")
                # Let the waiting workers meet the error themselves: they back off, or
                # park their shard if it is permanent.
                for event in self._waiting.values():
                    event.set()
                self._waiting.clear()
                pause = self._max_interval_s if transient else PERMANENT_ERROR_PAUSE_S
                await self._stop.sleep(pause)

    async def _watch(self, conn: AsyncConnection) -> None:
        interval = MIN_INTERVAL_S
        while not self._stop.stopping:
            if not self._waiting:
                self._someone_waits.clear()
                if await self._stop.wait(self._someone_waits):
                    return
                interval = MIN_INTERVAL_S
            # A plain sleep, checked after: at most RELAY_IDLE_POLL_MS late for a stop,
            # and cheaper than a stop-aware wait on every poll.
            await asyncio.sleep(interval)
            if self._stop.stopping:
                return
            shards = list(self._waiting)
            if not shards:
                continue
            ready = await self._store.shards_with_pending(conn, shards)
            for shard in ready:
                event = self._waiting.pop(shard, None)
                if event is not None:
                    event.set()
            interval = MIN_INTERVAL_S if ready else min(interval * 2, self._max_interval_s)
