"""One consumer group's loop: poll a batch, handle each partition's records in order
(partitions side by side), report the done offsets, commit them periodically.

Per record: parse the envelope (a defect parks it at once), then one Postgres
transaction (dedup + sequence check + effects), retried with backoff; after
`max_attempts` failures the record is parked and the partition moves on. A record's
offset is reported done only after its transaction committed (or it was parked).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import structlog
from confluent_kafka import KafkaException
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers import metrics
from consumers.dead_letter import DeadLetterTopic
from consumers.inbox import Inbox
from consumers.incoming import Incoming
from consumers.reader import TP, Reader, consumer_config, group_id
from consumers.registry import ConsumerSpec, InvalidEvent
from consumers.retry import MAX_UNAVAILABLE_BACKOFF_S, backoff_s
from core.db_errors import is_transient
from core.dead_letters import DeliveryError
from core.envelope import Envelope, EnvelopeError
from core.lifecycle import StopSignal
from core.settings import Settings

log = structlog.get_logger(__name__)

MAX_BATCH = 500
POLL_TIMEOUT_S = 0.25
UNAVAILABLE_BASE_MS = 100


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
        for message in messages:
            # SIGTERM: finish the record in flight, leave the rest for redelivery.
            if self._stop.stopping or not await self._handle(message):
                return
            done[tp] = message.offset + 1

    async def _handle(self, message: Incoming) -> bool:
        """True when the record is finished (applied, skipped or parked)."""
        event_id = message.header_event_id
        with structlog.contextvars.bound_contextvars(
            consumer=self.name,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            event_id=None if event_id is None else str(event_id),
            trace_id=message.trace_id,
        ):
            try:
                event = Envelope.parse(message.value)
            except EnvelopeError as exc:
                return await self._park(message, None, f"invalid envelope: {exc}", 1)
            with structlog.contextvars.bound_contextvars(
                event_id=str(event.event_id), event_type=event.event_type
            ):
                return await self._apply(message, event)

    async def _apply(self, message: Incoming, event: Envelope) -> bool:
        handlers = self._spec.handlers_for(self._roles[message.topic], event.event_type)
        attempt, unavailable = 1, 0
        while True:
            started = time.perf_counter()
            try:
                applied = await self._inbox.apply(message, event, handlers)
            except InvalidEvent as exc:
                return await self._park(message, event, f"invalid event: {exc}", attempt)
            except Exception as exc:  # a handler may raise anything; each is recorded
                # Postgres down or shedding load is not the event's fault: waiting for
                # it does not use up the event's attempts.
                if is_transient(exc):
                    unavailable += 1
                    metrics.DB_UNAVAILABLE.labels(**self._labels).inc()
                    delay = backoff_s(UNAVAILABLE_BASE_MS, unavailable, MAX_UNAVAILABLE_BACKOFF_S)
                    log.warning(
                        "postgres unavailable, waiting", error=_first_line(exc), backoff_s=delay
                    )
                elif attempt >= self._settings.consumers.max_attempts:
                    log.error("handler failed for the last time", attempts=attempt, exc_info=exc)
                    return await self._park(message, event, _describe(exc), attempt)
                else:
                    metrics.RETRIES.labels(**self._labels).inc()
                    delay = backoff_s(self._settings.consumers.retry_backoff_ms, attempt)
                    log.warning(
                        "handler failed, retrying",
                        attempt=attempt,
                        error=_describe(exc),
                        backoff_s=delay,
                    )
                    attempt += 1
                if await self._stop.sleep(delay):
                    return False
                continue
            metrics.HANDLER_SECONDS.labels(**self._labels).observe(time.perf_counter() - started)
            self._record(message, event, applied.fresh, applied.anomaly, applied.previous)
            return True

    def _record(
        self,
        message: Incoming,
        event: Envelope,
        fresh: bool,
        anomaly: str | None,
        previous: int | None,
    ) -> None:
        if not fresh:
            metrics.DUPLICATES.labels(**self._labels).inc()
            log.info("duplicate event skipped")
            return
        metrics.PROCESSED.labels(**self._labels).inc()
        if anomaly is not None:
            metrics.SEQUENCE_ANOMALIES.labels(self.name, anomaly).inc()
            log.error(
                "sequence anomaly",
                kind=anomaly,
                key=event.key,
                sequence=event.sequence,
                previous=previous,
            )
        log.debug("event processed", replay=message.is_replay)

    async def _park(
        self, message: Incoming, event: Envelope | None, error: str, attempts: int
    ) -> bool:
        """dead_letters row first (idempotent per record), then `<topic>.dlq`."""
        failures = 0
        while True:
            try:
                dead_letter_id, new = await self._inbox.park(message, event, error, attempts)
                await self._dlq.publish(message, error, attempts, dead_letter_id)
            except (DeliveryError, KafkaException) as exc:
                reason = f"dead-letter topic unavailable: {exc}"
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reason = f"postgres unavailable: {_first_line(exc)}"
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
            failures += 1
            delay = backoff_s(UNAVAILABLE_BASE_MS, failures, MAX_UNAVAILABLE_BACKOFF_S)
            log.warning("could not park record, waiting", reason=reason, backoff_s=delay)
            if await self._stop.sleep(delay):
                return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}"
