"""One consumer group's loop: poll a batch, handle each partition's records in order
(partitions side by side), report the done offsets, commit them periodically.

Per partition's slice of a poll: parse the envelopes (a defect parks that record at
once), then one Postgres transaction for the records in offset order (dedup, sequence
checks, effects). A record whose handlers fail is isolated, retried with backoff and
parked after `max_attempts`; the others are neither lost nor applied twice. An
offset is reported done only after its record's transaction committed (or it was
parked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

import structlog
from confluent_kafka import KafkaException
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers import metrics
from consumers.dead_letter import DeadLetterTopic
from consumers.inbox import Applied, BatchFailed, Delivery, Inbox
from consumers.incoming import Incoming
from consumers.reader import TP, Reader, consumer_config
from consumers.registry import ConsumerSpec, InvalidEvent
from core.db_errors import is_transient
from core.dead_letters import DeliveryError
from core.envelope import Envelope, EnvelopeError
from core.kafka import group_id
from core.lifecycle import StopSignal
from core.retry import Backoff, backoff_s, first_line
from core.settings import Settings

log = structlog.get_logger(__name__)

# Records of one partition per poll, i.e. the most one transaction applies.
MAX_BATCH = 500
POLL_TIMEOUT_S = 0.25
# A failing handler: CONSUMER_RETRY_BACKOFF_MS doubling up to this.
MAX_RETRY_BACKOFF_S = 30.0
# Postgres or the dead-letter topic unreachable: waited for, not counted as attempts.
UNAVAILABLE_BASE_S = 0.1
MAX_UNAVAILABLE_BACKOFF_S = 5.0


class ConsumerWorker:
    def __init__(
        self,
        spec: ConsumerSpec,
        settings: Settings,
        engine: AsyncEngine,
        stop: StopSignal,
        *,
        instance_id: str | None = None,
    ) -> None:
        self.name = spec.name
        self._spec = spec
        self._settings = settings
        self._stop = stop
        self._roles = spec.topics(settings.kafka.topics)
        self._reader = Reader(
            consumer_config(settings.kafka, spec.name, instance_id), list(self._roles), spec.name
        )
        self._inbox = Inbox(engine, spec.name, settings)
        self._dlq = DeadLetterTopic(settings.kafka, spec.name)
        self._labels = {"consumer": spec.name}
        self._max_attempts = settings.consumers.max_attempts
        metrics.declare(spec.name)

    @property
    def topics(self) -> list[str]:
        return list(self._roles)

    async def run(self) -> None:
        log.info(
            "consumer starting",
            consumer=self.name,
            topics=self.topics,
            group=group_id(self._settings.kafka, self.name),
        )
        try:
            await self._reader.start()
            while not self._stop.stopping:
                batch = await self._reader.poll(MAX_BATCH, POLL_TIMEOUT_S)
                if batch:
                    await self._reader.mark_done(await self._handle_batch(batch))
                await self._reader.commit()
        finally:
            await self._reader.close()
            await self._dlq.close()
            log.info(
                "consumer stopped", consumer=self.name, reason=self._stop.reason or "loop ended"
            )

    async def _handle_batch(self, batch: list[Incoming]) -> dict[TP, int]:
        by_partition: dict[TP, list[Incoming]] = defaultdict(list)
        for message in batch:
            by_partition[(message.topic, message.partition)].append(message)
        done: dict[TP, int] = {}
        # Keys never span partitions, so partitions can go side by side while each
        # keeps its order.
        async with asyncio.TaskGroup() as group:
            for tp, messages in by_partition.items():
                group.create_task(self._handle_partition(tp, messages, done))
        return done

    async def _handle_partition(
        self, tp: TP, messages: list[Incoming], done: dict[TP, int]
    ) -> None:
        """Consecutive records whose envelopes parse go to Postgres as one batch; a
        record that does not parse is parked in its place, so the order holds."""
        run: list[Delivery] = []
        for message in messages:
            try:
                event = Envelope.parse(message.value)
            except EnvelopeError as exc:
                if run and not await self._apply_run(tp, run, done):
                    return
                run = []
                if self._stop.stopping or not await self._park_unparsed(message, exc):
                    return
                done[tp] = message.offset + 1
                continue
            handlers = self._spec.handlers_for(self._roles[message.topic], event.event_type)
            run.append(Delivery(message, event, handlers))
        if run:
            await self._apply_run(tp, run, done)

    async def _park_unparsed(self, message: Incoming, exc: EnvelopeError) -> bool:
        with self._record_context(message, None):
            return await self._park(message, None, f"invalid envelope: {exc}", 1)

    def _record_context(
        self, message: Incoming, event: Envelope | None
    ) -> contextlib.AbstractContextManager[object]:
        event_id = event.event_id if event is not None else message.header_event_id
        return structlog.contextvars.bound_contextvars(
            consumer=self.name,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            event_id=None if event_id is None else str(event_id),
            event_type=None if event is None else event.event_type,
            trace_id=message.trace_id,
        )

    async def _apply_run(self, tp: TP, run: list[Delivery], done: dict[TP, int]) -> bool:
        """Apply `run` in as few transactions as it allows; True when every record is
        finished (applied, skipped or parked), False when stopped before.

        The whole run goes as one batch. When a record's handlers fail, the records
        before it go again as a batch, then that record alone, retried with backoff
        and parked after max_attempts (its first failure counts as attempt 1), then
        the rest as a batch. A failure that belongs to no record (the commit, say)
        sends the run's records one by one, which finds the culprit, if any.
        Postgres being unreachable is waited for without using up attempts.
        """
        pos, end, single_until = 0, len(run), 0
        attempt = 1
        unavailable = Backoff(UNAVAILABLE_BASE_S, MAX_UNAVAILABLE_BACKOFF_S)
        failure: tuple[int, BaseException] | None = None
        while pos < len(run):
            if failure is not None and failure[0] == pos:
                exc, failure = failure[1], None
                delivery = run[pos]
                with self._record_context(delivery.message, delivery.event):
                    if isinstance(exc, InvalidEvent) or attempt >= self._max_attempts:
                        reason = (
                            f"invalid event: {exc}"
                            if isinstance(exc, InvalidEvent)
                            else _describe(exc)
                        )
                        if not isinstance(exc, InvalidEvent):
                            log.error(
                                "handler failed for the last time", attempts=attempt, exc_info=exc
                            )
                        if not await self._park(delivery.message, delivery.event, reason, attempt):
                            return False
                        done[tp] = delivery.message.offset + 1
                        pos, end, attempt = pos + 1, len(run), 1
                        continue
                    metrics.RETRIES.labels(**self._labels).inc()
                    delay = backoff_s(
                        attempt,
                        base_s=self._settings.consumers.retry_backoff_ms / 1000,
                        cap_s=MAX_RETRY_BACKOFF_S,
                    )
                    log.warning(
                        "handler failed, retrying",
                        attempt=attempt,
                        error=_describe(exc),
                        backoff_s=delay,
                    )
                if await self._stop.sleep(delay):
                    return False
                attempt, end = attempt + 1, pos + 1
            # SIGTERM: finish the batch in flight, leave the rest for redelivery.
            if self._stop.stopping:
                return False
            if pos < single_until:
                end = pos + 1
            batch = run[pos:end]
            started = time.perf_counter()
            try:
                applied = await self._inbox.apply(batch)
            except BatchFailed as failed:
                if is_transient(failed.cause):
                    metrics.DB_UNAVAILABLE.labels(**self._labels).inc()
                    delay = unavailable.next()
                    log.warning(
                        "postgres unavailable, waiting",
                        consumer=self.name,
                        topic=tp[0],
                        partition=tp[1],
                        error=first_line(failed.cause),
                        backoff_s=delay,
                    )
                    if await self._stop.sleep(delay):
                        return False
                    continue
                if failed.index is None and len(batch) > 1:
                    single_until = end
                    continue
                failing = pos + (failed.index or 0)
                failure, end = (failing, failed.cause), failing
                continue
            unavailable.reset()
            metrics.HANDLER_SECONDS.labels(**self._labels).observe(time.perf_counter() - started)
            self._record(batch, applied)
            done[tp] = batch[-1].message.offset + 1
            pos, end, attempt = end, len(run), 1
        return True

    def _record(self, batch: list[Delivery], applied: list[Applied]) -> None:
        fresh = 0
        # Binding a record's context costs more than applying a welcome notification:
        # only for lines that are written.
        debug = log.is_enabled_for(logging.DEBUG)
        for delivery, outcome in zip(batch, applied, strict=True):
            if not outcome.fresh:
                metrics.DUPLICATES.labels(**self._labels).inc()
                with self._record_context(delivery.message, delivery.event):
                    log.info("duplicate event skipped")
                continue
            fresh += 1
            if outcome.anomaly is not None:
                event = delivery.event
                metrics.SEQUENCE_ANOMALIES.labels(self.name, outcome.anomaly).inc()
                with self._record_context(delivery.message, event):
                    log.error(
                        "sequence anomaly",
                        kind=outcome.anomaly,
                        key=event.key,
                        sequence=event.sequence,
                        previous=outcome.previous,
                    )
            if debug:
                with self._record_context(delivery.message, delivery.event):
                    log.debug("event processed", replay=delivery.message.is_replay)
        if fresh:
            metrics.PROCESSED.labels(**self._labels).inc(fresh)

    async def _park(
        self, message: Incoming, event: Envelope | None, error: str, attempts: int
    ) -> bool:
        """dead_letters row first (idempotent per record), then `<topic>.dlq`."""
        backoff = Backoff(UNAVAILABLE_BASE_S, MAX_UNAVAILABLE_BACKOFF_S)
        while True:
            try:
                dead_letter_id, new = await self._inbox.park(message, event, error, attempts)
                await self._dlq.publish(message, error, attempts, dead_letter_id)
            except (DeliveryError, KafkaException) as exc:
                reason = f"dead-letter topic unavailable: {exc}"
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reason = f"postgres unavailable: {first_line(exc)}"
            else:
                if new:
                    metrics.DEAD_LETTERED.labels(**self._labels).inc()
                log.error(
                    "record dead-lettered",
                    error=error,
                    attempts=attempts,
                    dead_letter_id=dead_letter_id,
                )
                return True
            delay = backoff.next()
            log.warning("could not park record, waiting", reason=reason, backoff_s=delay)
            if await self._stop.sleep(delay):
                return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
