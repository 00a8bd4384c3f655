"""The relay process: holds shard leases, runs one ShardWorker per led shard, reports
backlog metrics and applies retention."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from confluent_kafka import KafkaException
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db_errors import DATABASE_ERRORS, is_transient, sqlstate_of
from core.lifecycle import StopSignal
from core.outbox_store import OutboxStore
from core.retry import Backoff, first_line
from core.settings import Settings
from core.topics import TopicSpec, ensure_topics
from relay import metrics
from relay.db_errors import ShardParked, report
from relay.leases import ShardLeases
from relay.pending_watch import PendingWatch
from relay.retention import delete_published
from relay.shard_worker import ShardWorker
from relay.watchdog import LoopWatchdog

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 10.0
METRICS_INTERVAL_S = 2.0
RETENTION_INTERVAL_S = 60.0


def relay_topics(settings: Settings) -> list[TopicSpec]:
    topics = settings.kafka.topics
    specs = [TopicSpec(name, topics.partitions) for name in topics.event_topics]
    # Partition `shard` holds shard's checkpoints; compaction keeps the last of each.
    # Records are placed by shard number, never by key hash, so raising RELAY_SHARDS
    # may add partitions: a new one is a shard that never had a checkpoint.
    specs.append(
        TopicSpec(
            topics.checkpoint,
            settings.relay.shards,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            may_grow=True,
        )
    )
    return specs


class StrandedShards(Exception):
    """Unpublished rows sit in shards this relay's RELAY_SHARDS never leads: started
    like this, they would never be published, and a key's older events there would
    be overtaken by its newer ones in the shards that are led."""

    def __init__(self, shards: int, stranded: dict[int, int]) -> None:
        named = ", ".join(f"shard {s}: {n}" for s, n in sorted(stranded.items()))
        super().__init__(
            f"unpublished rows in shards RELAY_SHARDS={shards} never leads ({named}); "
            f"run the relays with RELAY_SHARDS={max(stranded) + 1}, with writes paused or "
            "writers still on that count, until they are published, then change it"
        )


def stranded(pending: dict[int, tuple[int, float]], shards: int) -> dict[int, int]:
    """shard -> unpublished rows, for the shards at or above the configured count."""
    return {shard: count for shard, (count, _) in pending.items() if shard >= shards and count}


class Relay:
    def __init__(self, settings: Settings, engine: AsyncEngine, stop: StopSignal) -> None:
        self._settings = settings
        self._engine = engine
        self._stop = stop
        self._store = OutboxStore(engine)
        self._watch = PendingWatch(self._store, settings.relay.idle_poll_ms / 1000, stop)
        self._workers: dict[int, tuple[ShardWorker, asyncio.Task[None]]] = {}
        # Shards stopped by a permanent database error: their lease is kept, so no
        # other relay spins on the same error, until this relay restarts.
        self._parked: set[int] = set()
        self._leases: ShardLeases | None = None
        self._stranded: dict[int, int] = {}
        self._reported = set(range(settings.relay.shards))
        self._side: dict[str, asyncio.Task[None]] = {}
        self.failed = False
        self._watchdog = LoopWatchdog(settings.relay.lease_timeout_ms / 2000)

    @property
    def led_shards(self) -> set[int]:
        return set(self._workers)

    async def run(self) -> None:
        if not await self._ensure_topics() or not await self._check_shards():
            return
        self._side = {
            name: asyncio.create_task(factory(), name=name) for name, factory in self._side_jobs()
        }
        try:
            await self._lead()
        finally:
            self._stop.stop("relay ended")
            await self._end_side_jobs()
            await self._shutdown()

    async def _end_side_jobs(self) -> None:
        """Each side job ends at its next pause once the stop is set. Cancelling one in
        the middle of a statement can leave its pooled connection inside an unfinished
        protocol exchange (asyncpg prepares with a Flush, not a Sync), its transaction
        open and its lock on `outbox` held, until that connection is used again."""
        await _end_within_grace(list(self._side.values()))

    def _side_jobs(self) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        return [
            ("relay-backlog-metrics", self._report_backlog),
            ("relay-retention", self._retention),
            ("relay-pending-watch", self._watch.run),
            ("relay-lease-heartbeat", self._heartbeat),
            ("relay-watchdog", lambda: self._watchdog.run(self._stop)),
        ]

    def _supervise(self) -> None:
        """A side task that died (a bug, an error nobody foresaw) is logged and started
        again: a dead pending watch would otherwise leave every idle shard asleep."""
        for name, factory in self._side_jobs():
            task = self._side[name]
            if task.done():
                error = None if task.cancelled() else task.exception()
                log.error("side task died, restarting it", task=name, error=repr(error))
                self._side[name] = asyncio.create_task(factory(), name=name)

    async def _ensure_topics(self) -> bool:
        """Create the topics, waiting for the broker if it is not up yet; False if a
        stop came first. A topic of the wrong shape (TopicError) is fatal."""
        backoff = Backoff(0.5, 10.0)
        while not self._stop.stopping:
            try:
                await asyncio.to_thread(
                    ensure_topics,
                    self._settings.kafka.bootstrap_servers,
                    relay_topics(self._settings),
                    10.0,
                )
                return True
            except KafkaException as exc:
                delay = backoff.next()
                log.warning("kafka not ready, retrying", error=str(exc), backoff_s=delay)
                await self._stop.sleep(delay)
        return False

    async def _lead(self) -> None:
        interval = self._settings.relay.lock_check_ms / 1000
        while not self._stop.stopping:
            self._supervise()
            try:
                await self._balance()
            except DATABASE_ERRORS as exc:
                if not is_transient(exc):
                    metrics.PERMANENT_DB_ERRORS.labels("leases", sqlstate_of(exc) or "none").inc()
                    log.error("permanent database error on leases, stopping", error=first_line(exc))
                    self.failed = True
                    self._stop.stop("permanent database error on leases")
                    return
                log.error("lease connection lost, dropping all shards", error=first_line(exc))
                await self._drop_all()
            await self._stop.sleep(interval)

    async def _check_shards(self) -> bool:
        """Before leading anything, once the broker answered (which may take a while): a
        lowered RELAY_SHARDS must not strand rows (raises StrandedShards). Waits out an
        unreachable database; False if a stop or a permanent database error came first.
        Later, the backlog gauges and `connectin status` show such rows (written by an
        API configured with more shards) without stopping what does get published."""
        backoff = Backoff(0.5, 10.0)
        shards = self._settings.relay.shards
        while not self._stop.stopping:
            try:
                found = stranded(await self._store.pending(), shards)
            except DATABASE_ERRORS as exc:
                if not report(exc, "start-up check of the outbox's shards failed", "startup"):
                    self.failed = True
                    self._stop.stop("permanent database error at start-up")
                    return False
                await self._stop.sleep(backoff.next())
                continue
            if found:
                raise StrandedShards(shards, found)
            return True
        return False

    async def _balance(self) -> None:
        if self._leases is None:
            self._leases = await ShardLeases.open(self._settings)
        leases = self._leases
        await self._evict_frozen(leases)
        held = await leases.held()
        self._parked &= held
        for shard in list(self._workers):
            task = self._workers[shard][1]
            if shard not in held:
                log.error("lease lost, stopping shard at once", shard=shard)
                task.cancel()
                del self._workers[shard]
            elif task.done() and not task.cancelled() and isinstance(task.exception(), ShardParked):
                log.error("shard parked until the relay restarts", shard=shard)
                del self._workers[shard]
                self._parked.add(shard)
            elif task.done():
                error = None if task.cancelled() else task.exception()
                log.warning("shard worker ended, releasing lease", shard=shard, error=repr(error))
                metrics.COMMIT_FAILURES.labels(str(shard), "fenced").inc()
                del self._workers[shard]
                await leases.release(shard)
        shards = self._settings.relay.shards
        share = math.ceil(shards / await leases.live_relays())
        if len(self._workers) + len(self._parked) > share and self._workers:
            await self._hand_over(max(self._workers), leases)
        # Start from a different shard per relay so two relays starting together
        # do not both race for shard 0 first.
        start = id(self) % shards
        for offset in range(shards):
            if len(self._workers) + len(self._parked) >= share:
                break
            shard = (start + offset) % shards
            if shard in self._workers or shard in self._parked:
                continue
            if await leases.try_acquire(shard):
                self._start(shard)
        metrics.SHARDS_LED.set(len(self._workers))
        metrics.SHARDS_PARKED.set(len(self._parked))

    async def _evict_frozen(self, leases: ShardLeases) -> None:
        """Free the shards of relays that stopped beating (relay/leases.py)."""
        timeout_s = self._settings.relay.lease_timeout_ms / 1000
        try:
            evicted_relays = await leases.evict_stale(timeout_s)
        except DATABASE_ERRORS as exc:
            if is_transient(exc):
                raise
            # E.g. relays of this deployment log in as different roles: terminating
            # another's backend needs the same role or pg_signal_backend. Leading our
            # own shards goes on; frozen peers keep theirs until they wake or die.
            report(exc, "cannot evict frozen relays", "leases")
            return
        for evicted in evicted_relays:
            metrics.EVICTIONS.inc()
            log.warning(
                "frozen relay evicted: terminated its lease backend to take its shards",
                backend_pid=evicted.pid,
                idle_s=round(evicted.idle_s, 1),
                shards=evicted.shards,
                terminated=evicted.gone,
            )

    async def _heartbeat(self) -> None:
        relay = self._settings.relay
        interval = min(relay.lock_check_ms, relay.lease_timeout_ms / 4) / 1000
        while not await self._stop.sleep(interval):
            leases = self._leases
            if leases is None:
                continue
            try:
                await leases.beat()
            except DATABASE_ERRORS as exc:
                # The lease loop meets the same error on its next check and handles it.
                log.debug("lease heartbeat failed", error=first_line(exc))

    def _start(self, shard: int) -> None:
        worker = ShardWorker(shard, self._settings, self._store, self._watch)
        task = asyncio.create_task(worker.run(), name=f"relay-shard-{shard}")
        self._workers[shard] = (worker, task)

    async def _hand_over(self, shard: int, leases: ShardLeases) -> None:
        """Give a shard to a relay that has fewer: finish its batch, then unlock. The
        worker has ended, cancelled or not, before the lock goes: no statement or mark
        of this leader still runs when the next one recovers the shard."""
        worker, task = self._workers.pop(shard)
        worker.finish()
        await _end_within_grace([task])
        await leases.release(shard)
        log.info("shard handed over", shard=shard)

    async def _drop_all(self) -> None:
        for _, task in self._workers.values():
            task.cancel()
        self._workers.clear()
        self._parked.clear()
        metrics.SHARDS_LED.set(0)
        metrics.SHARDS_PARKED.set(0)
        if self._leases is not None:
            leases, self._leases = self._leases, None
            try:
                await leases.close()
            except DATABASE_ERRORS as exc:
                log.warning("lease connection close failed", error=first_line(exc))

    async def _shutdown(self) -> None:
        for worker, _ in self._workers.values():
            worker.finish()
        await _end_within_grace([task for _, task in self._workers.values()])
        await self._drop_all()

    async def _report_backlog(self) -> None:
        while True:
            try:
                pending = await self._store.pending()
            except DATABASE_ERRORS as exc:
                report(exc, "backlog query failed", "backlog")
                pending = None
            if pending is not None:
                shards = self._settings.relay.shards
                # Shards past the configured count too: their rows are stranded, and the
                # oldest-age alert must see them grow. Once such a shard is reported it
                # stays, so it drops to 0 when its rows are gone instead of freezing.
                self._reported |= pending.keys()
                for shard in sorted(self._reported):
                    count, oldest = pending.get(shard, (0, 0.0))
                    metrics.PENDING.labels(str(shard)).set(count)
                    metrics.OLDEST_AGE.labels(str(shard)).set(oldest)
                found = stranded(pending, shards)
                if found.keys() != self._stranded.keys():
                    if found:
                        log.error(
                            "unpublished rows in shards no relay with this RELAY_SHARDS leads: "
                            "is a writer configured with more shards?",
                            relay_shards=shards,
                            stranded=found,
                        )
                    else:
                        log.info("no more rows outside the configured shards")
                self._stranded = found
            if await self._stop.sleep(METRICS_INTERVAL_S):
                return

    async def _retention(self) -> None:
        """Only the leader of shard 0 cleans up, so relays do not compete for it."""
        relay = self._settings.relay
        while not await self._stop.sleep(RETENTION_INTERVAL_S):
            if 0 not in self._workers:
                continue
            counted = 0

            def progress(deleted: int) -> None:
                nonlocal counted
                metrics.RETENTION_DELETED.inc(deleted - counted)
                counted = deleted
                log.info("retention progress", deleted=deleted)

            try:
                run = await delete_published(
                    self._engine,
                    age_s=relay.retention_hours * 3600,
                    batch=relay.retention_batch,
                    on_progress=progress,
                )
                if run.deleted:
                    log.info("retention done", deleted=run.deleted, batches=run.batches)
            except DATABASE_ERRORS as exc:
                report(exc, "retention failed", "retention")


async def _end_within_grace(tasks: list[asyncio.Task[None]]) -> None:
    """Wait up to SHUTDOWN_GRACE_S for tasks told to end (shard workers, side jobs);
    cancel the ones still running. Their names say which they are."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    for task in late:
        log.warning("task did not end in time, cancelling it", task=task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
