"""The leader's loop for one shard: recover from the checkpoint, then batch after batch:
fetch unpublished rows in id order, publish them with their checkpoint in one Kafka
transaction, and mark them published while the next batch is fetched and produced.

The overlap (architecture invariant 3): the mark of batch N runs beside the fetch,
produce and commit of batch N+1. The next fetch leaves batch N's rows out, and batch
N+1's checkpoint names them as unmarked, so whichever of the two a crash interrupts,
the shard's last checkpoint names every row in Kafka that may lack its mark. At most
one mark is in flight: before batch N+1's own mark starts, batch N's has committed."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import structlog
from confluent_kafka import KafkaException

from core.db_errors import DATABASE_ERRORS
from core.lifecycle import StopSignal
from core.outbox_store import OutboxRow, OutboxStore
from core.retry import Backoff, first_line
from core.settings import Settings
from relay import metrics
from relay.checkpoint import read_last_checkpoint
from relay.db_errors import park_if_permanent
from relay.failpoints import Failpoints
from relay.pending_watch import PendingWatch
from relay.producer import BatchAborted, ShardProducer

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BACKOFF_S = 5.0
# Wait for more rows when the shard's recent rate expects at least this many within
# RELAY_ACCUMULATE_MS: at half an event a wait still roughly halves the transactions
# (the API's 370 requests/s over 4 shards), while 100 events/s (0.25) go at once.
MIN_EXPECTED_EVENTS = 0.5


class ShardWorker:
    def __init__(
        self, shard: int, settings: Settings, store: OutboxStore, watch: PendingWatch
    ) -> None:
        self.shard = shard
        self._settings = settings
        self._store = store
        self._watch = watch
        self._wake: asyncio.Event | None = None
        self._label = str(shard)
        self._finish = StopSignal()
        self._failpoints = Failpoints(settings.relay.failpoint)
        # The mark of the last committed batch, running beside the next batch, and
        # that batch's ids until the mark is known to have committed.
        self._marking: asyncio.Task[None] | None = None
        self._unmarked: list[int] = []
        # One thread per shard owns the producer: librdkafka calls block, and a single
        # thread keeps them strictly ordered even after the task is cancelled.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"relay-shard-{shard}")
        self._producer: ShardProducer | None = None

    def finish(self) -> None:
        """Graceful stop: end after the batch in flight is committed and marked."""
        self._finish.stop(f"finish shard {self.shard} after its batch in flight")
        if self._wake is not None:
            self._wake.set()

    async def _blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self) -> None:
        log.info("shard taken", shard=self.shard)
        try:
            producer = ShardProducer(self._settings.kafka, self._settings.relay, self.shard)
            self._producer = producer
            await self._blocking(producer.init_transactions)
            await self._recover()
            await self._loop(producer)
            await self._settle_mark()
        finally:
            await self._abandon_mark()
            self._watch.unregister(self.shard)
            self._close()
            log.info("shard released", shard=self.shard)

    def _close(self) -> None:
        producer = self._producer
        if producer is not None:
            # Queued behind any call still in flight, so it never races it.
            self._executor.submit(producer.close)
        self._executor.shutdown(wait=False)

    async def _recover(self) -> None:
        read = partial(read_last_checkpoint, self._settings.kafka, self.shard)
        backoff = Backoff(0.1, MAX_BACKOFF_S)
        while True:
            try:
                checkpoint = await self._blocking(read)
                break
            except (KafkaException, TimeoutError) as exc:
                # A partition leader can be moving (fresh topic, broker restart): retry
                # while we still hold the lease, rather than give the shard up.
                delay = backoff.next()
                log.warning(
                    "checkpoint read failed, retrying",
                    shard=self.shard,
                    error=first_line(exc),
                    backoff_s=delay,
                )
                await asyncio.sleep(delay)
        if checkpoint is None:
            return
        self._failpoints.hit("during_recovery")
        receipt = {"recovered_from_checkpoint": checkpoint.offset}
        marked = await self._retry_db(
            lambda: self._store.mark_recovered(checkpoint.to_mark(), receipt)
        )
        metrics.RECOVERED.labels(self._label).inc(len(marked))
        log.info(
            "checkpoint recovered",
            shard=self.shard,
            checkpoint_offset=checkpoint.offset,
            batch=len(checkpoint.outbox_ids),
            unmarked=len(checkpoint.unmarked),
            marked=len(marked),
            # Rows of earlier batches whose overlapped mark the crash cut short.
            marked_earlier=len(marked.intersection(checkpoint.unmarked)),
        )

    async def _loop(self, producer: ShardProducer) -> None:
        batch_size = self._settings.relay.batch_size
        accumulate_s = self._settings.relay.accumulate_ms / 1000

        async def fetch(limit: int, exclude: list[int]) -> list[OutboxRow]:
            return await self._retry_db(lambda: self._store.fetch(self.shard, limit, exclude))

        arrivals = ArrivalRate()
        # The last batch was partial while rows kept arriving: the next cycle waits
        # first and fetches once (see below).
        steady = False
        while not self._finish.stopping:
            await self._settle_mark_if_done()
            started = time.perf_counter()
            expected = arrivals.per_s() * accumulate_s
            waited = steady and expected >= MIN_EXPECTED_EVENTS
            if waited and await self._finish.sleep(accumulate_s):
                break
            rows = await fetch(batch_size, self._unmarked)
            if not rows:
                steady = False
                # Nothing to overlap the mark with: settle it before sleeping.
                await self._settle_mark()
                self._wake = self._watch.register(self.shard)
                if not self._finish.stopping:
                    await self._wake.wait()
                self._wake = None
                continue
            # Under a steady flow a Kafka transaction per one or two events costs more
            # CPU (ours and the broker's) than the events themselves: when this fetch
            # is not a full batch and the shard's recent rate promises more events
            # within the bound, wait that long and fetch again. A lone
            # event after an idle spell, and full batches, go at once. The second
            # fetch selects by status again but leaves out the rows already in hand:
            # a short first fetch held every unpublished row of the shard, so per key
            # anything new committed after them, and Postgres renders each row once.
            # Once a partial batch has gone with rows still arriving, the next cycle
            # waits before its fetch instead, so a steady flow costs one fetch per
            # batch rather than two; a burst then waits at most that bound too.
            waits = not waited and len(rows) < batch_size and expected >= MIN_EXPECTED_EVENTS
            if waits and not await self._finish.sleep(accumulate_s):
                held = [row.id for row in rows]
                more = await fetch(batch_size - len(rows), [*self._unmarked, *held])
                rows = sorted([*rows, *more], key=lambda row: row.id)
            steady = len(rows) < batch_size and (waited or waits)
            arrivals.add(len(rows))
            if rows:
                await self._publish(producer, rows, started)

    async def _publish(
        self, producer: ShardProducer, rows: list[OutboxRow], started: float
    ) -> None:
        limit = self._settings.relay.max_message_bytes
        oversize = [r for r in rows if r.exceeds(limit)]
        for row in oversize:
            await self._dead_letter(
                row, f"message of {row.size_bytes()} bytes exceeds limit {limit}"
            )
        if oversize:
            rows = [r for r in rows if r not in oversize]
        backoff = Backoff(0.05, MAX_BACKOFF_S)
        while rows:
            await self._settle_mark_if_done()
            try:
                result = await self._blocking(partial(producer.publish, rows, self._unmarked))
            except BatchAborted as aborted:
                metrics.COMMIT_FAILURES.labels(self._label, "aborted").inc()
                log.warning("batch aborted", shard=self.shard, reason=str(aborted))
                bad = aborted.unpublishable
                for row in [r for r in rows if r.id in bad]:
                    await self._dead_letter(row, bad[row.id])
                rows = [r for r in rows if r.id not in bad]
                if await self._finish.sleep(backoff.next()):
                    return
                continue
            if len(result.receipts) != len(rows):
                raise RuntimeError(
                    f"commit succeeded with {len(result.receipts)} receipts for {len(rows)} rows"
                )
            metrics.PUBLISHED.labels(self._label).inc(len(rows))
            metrics.BATCH_SIZE.observe(len(rows))
            log.debug(
                "batch published",
                shard=self.shard,
                events=len(rows),
                first_id=rows[0].id,
                last_id=rows[-1].id,
            )
            if self._marking is not None and not self._marking.done():
                self._failpoints.hit("mark_overlap")
            await self._settle_mark()
            self._unmarked = [row.id for row in rows]
            self._marking = asyncio.create_task(
                self._mark(result.receipts, started), name=f"relay-mark-{self.shard}"
            )
            return

    async def _mark(self, receipts: list[tuple[int, int, int]], started: float) -> None:
        await self._retry_db(partial(self._store.mark_published, receipts))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _settle_mark(self) -> None:
        """Wait for the mark in flight; only then may a checkpoint leave its rows out.
        A permanent error in it parks the shard here (ShardParked)."""
        marking, self._marking = self._marking, None
        if marking is None:
            return
        await marking
        self._unmarked = []

    async def _settle_mark_if_done(self) -> None:
        """A mark that has already failed parks the shard before another batch is
        fetched or produced; one that succeeded frees its rows from the exclusion."""
        if self._marking is not None and self._marking.done():
            await self._settle_mark()

    async def _abandon_mark(self) -> None:
        """The shard is being dropped (lease lost, producer fenced, parked): stop a mark
        still running. Its rows are in the last checkpoint, which the next leader marks."""
        marking, self._marking = self._marking, None
        if marking is None:
            return
        marking.cancel()
        results = await asyncio.gather(marking, return_exceptions=True)
        error = results[0]
        if isinstance(error, Exception):
            log.warning("mark abandoned with the shard", shard=self.shard, error=first_line(error))

    async def _dead_letter(self, row: OutboxRow, reason: str) -> None:
        await self._retry_db(lambda: self._store.dead_letter(row.id, reason))
        metrics.DEAD_LETTERED.labels(self._label).inc()
        log.error(
            "event dead-lettered",
            shard=self.shard,
            event_id=row.event_id,
            topic=row.topic,
            outbox_id=row.id,
            reason=reason,
        )

    async def _retry_db(self, op: Callable[[], Awaitable[T]]) -> T:
        """Retry a Postgres call with backoff until it succeeds (Postgres restarting);
        a permanent error parks the shard instead (relay/db_errors.py).

        Leadership is checked elsewhere: if the lease is lost meanwhile, this task is
        cancelled, and the next leader recovers from the checkpoint."""
        backoff = Backoff(0.05, MAX_BACKOFF_S)
        while True:
            try:
                return await op()
            except DATABASE_ERRORS as exc:
                park_if_permanent(exc, shard=self.shard)
                delay = backoff.next()
                log.warning(
                    "database call failed, retrying",
                    shard=self.shard,
                    error=first_line(exc),
                    backoff_s=delay,
                )
                await asyncio.sleep(delay)


class ArrivalRate:
    """Events per second a shard fetched, as an exponentially decaying average over
    about TAU_S: tells a steady flow from a lone event."""

    TAU_S = 1.0

    def __init__(self) -> None:
        self._rate = 0.0
        self._at = time.monotonic()

    def _decay(self) -> None:
        now = time.monotonic()
        self._rate *= math.exp((self._at - now) / self.TAU_S)
        self._at = now

    def per_s(self) -> float:
        self._decay()
        return self._rate

    def add(self, events: int) -> None:
        self._decay()
        self._rate += events / self.TAU_S
