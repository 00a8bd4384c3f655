"""One Kafka consumer of one consumer group, driven from a thread of its own.

librdkafka calls block, and a confluent Consumer must not be used from two threads at
once: every call runs on a single-thread executor, and the rebalance callbacks run on
that same thread inside poll(). Offsets are never stored or committed by the client
itself: the worker reports which records are done (after their Postgres commit) and
only those offsets are committed: periodically, on revoke, and on close.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumers import metrics
from consumers.incoming import Incoming
from core.kafka import base_consumer_config, consumer_client_id, group_id
from core.settings import KafkaSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")
TP = tuple[str, int]

COMMIT_INTERVAL_S = 0.5
# Records read ahead of the handlers (bounded like the client's own prefetch).
HOLD_RECORDS = 5000


class KafkaFatalError(RuntimeError):
    """The consumer cannot go on (e.g. fenced by another member with its instance id)."""


def consumer_config(kafka: KafkaSettings, consumer: str, instance_id: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        **base_consumer_config(kafka, group_id(kafka, consumer)),
        "client.id": consumer_client_id(consumer),
        # Otherwise librdkafka marks a record done when poll() returns it, before
        # its effects are committed.
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        "partition.assignment.strategy": "cooperative-sticky",
        # Bounded prefetch: a slow Postgres makes the fetcher pause, not grow memory.
        "queued.max.messages.kbytes": 16 * 1024,
        "queued.min.messages": 2000,
        # read_committed fetches that find nothing visible yet are parked by the broker
        # for fetch.wait.max.ms (500 ms by default) even when a commit marker lands in
        # the meantime: that alone put ~400 ms on every event's way (bench/e2e_latency).
        "fetch.wait.max.ms": 10,
        # Once a partition's queue passes queued.min.messages, librdkafka postpones its
        # next fetch by this much (1 s by default), while the handlers drain the queue
        # in a fraction of that: a consumer catching up sat idle, waiting in poll().
        "fetch.queue.backoff.ms": 10,
    }
    if instance_id:
        # Static membership: a restarted process takes its partitions back at once
        # instead of waiting for the dead member's session to expire.
        config["group.instance.id"] = f"{instance_id}-{consumer}"
    return config


class Reader:
    def __init__(self, config: dict[str, Any], topics: list[str], consumer: str) -> None:
        self._config = config
        self._topics = topics
        self._name = consumer
        self._log = log.bind(consumer=consumer)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"consumer-{consumer}")
        self._consumer: Consumer | None = None
        # Only touched on the executor thread.
        self._assigned: set[TP] = set()
        self._done: dict[TP, int] = {}
        # Past the last record the client returned to us (handed out or not yet).
        self._returned: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}
        # Fetched records not handed out yet, per partition in offset order.
        self._held: dict[TP, deque[Message]] = {}
        self._held_count = 0
        self._last_commit = time.monotonic()

    async def _call(self, fn: Callable[[], T]) -> T:
        # In the caller's context, so log lines from the thread (rebalance callbacks
        # included) carry the same bound fields.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(context.run, fn)
        )

    async def start(self) -> None:
        await self._call(self._start)

    async def poll(self, per_partition: int, timeout_s: float) -> list[Incoming]:
        """Wait up to `timeout_s` for a record, then take what is already fetched: up
        to `per_partition` records of every partition that has some."""
        return await self._call(lambda: self._poll(per_partition, timeout_s))

    async def mark_done(self, next_offsets: dict[TP, int]) -> None:
        """Records before these offsets have their effects committed in Postgres."""
        if next_offsets:
            await self._call(lambda: self._mark_done(next_offsets))

    async def commit(self, *, force: bool = False) -> None:
        await self._call(lambda: self._commit_due(force))

    async def close(self) -> None:
        """Commit what is done and leave the group. Queued behind a call in flight."""
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # --- executor thread -------------------------------------------------------

    def _start(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _client(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("reader not started")
        return self._consumer

    def _poll(self, per_partition: int, timeout_s: float) -> list[Incoming]:
        consumer = self._client()
        if not self._held:
            first = consumer.poll(timeout_s)
            if first is None:
                return []
            self._accept(first)
        # The client's queue holds whole fetch responses, i.e. long runs of one
        # partition; reading ahead up to HOLD_RECORDS lets one poll hand out several
        # partitions, whose batches then commit side by side.
        while self._held_count < HOLD_RECORDS:
            more = consumer.consume(HOLD_RECORDS - self._held_count, 0)
            if not more:
                break
            for msg in more:
                self._accept(msg)
        batch: list[Message] = []
        for tp in list(self._held):
            queue = self._held[tp]
            for _ in range(min(per_partition, len(queue))):
                batch.append(queue.popleft())
            if not queue:
                del self._held[tp]
        self._held_count -= len(batch)
        return [Incoming.from_message(m) for m in batch]

    def _accept(self, msg: Message) -> None:
        err = msg.error()
        if err is None:
            tp = (msg.topic() or "", msg.partition() or 0)
            # Returned in the same call as the revoke of its partition: not ours.
            if tp not in self._assigned:
                return
            self._held.setdefault(tp, deque()).append(msg)
            self._held_count += 1
            offset = msg.offset()
            if offset is not None:
                self._returned[tp] = offset + 1
            return
        if err.fatal():
            raise KafkaFatalError(f"{err.name()}: {err.str()}")
        self._log.warning("kafka consumer error", code=err.name(), error=err.str())

    def _mark_done(self, next_offsets: dict[TP, int]) -> None:
        for tp, offset in next_offsets.items():
            # A partition revoked meanwhile was committed on revoke; its new owner
            # starts from there.
            if tp in self._assigned and offset > self._done.get(tp, -1):
                self._done[tp] = offset

    def _commit_due(self, force: bool) -> None:
        if force or time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
            self._commit(None)

    def _targets(self, only: set[TP] | None) -> list[TopicPartition]:
        """Per partition the offset to commit: the end of the done records, or, when
        every record the client returned is done, the client's position, which also
        steps over transaction markers (else a caught-up group shows a lag of one per
        commit). Records read ahead but not handed out yet are not done, so they keep
        the commit at `done`."""
        partitions = [tp for tp in self._assigned if only is None or tp in only]
        if not partitions:
            return []
        positions = self._client().position([TopicPartition(t, p) for t, p in partitions])
        targets = []
        for position in positions:
            tp = (position.topic, position.partition)
            target = self._done.get(tp, -1)
            if self._done.get(tp) == self._returned.get(tp) and position.offset > target:
                target = position.offset
            if target >= 0 and target != self._committed.get(tp):
                targets.append(TopicPartition(tp[0], tp[1], target))
        return targets

    def _commit(self, only: set[TP] | None) -> None:
        self._last_commit = time.monotonic()
        offsets = self._targets(only)
        if not offsets:
            return
        try:
            result = self._client().commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            metrics.COMMIT_FAILURES.labels(self._name).inc()
            # Not fatal: the records stay done in Postgres; a redelivery is skipped.
            self._log.warning("offset commit failed", code=err.name(), error=err.str())
            return
        for tp in result or []:
            if tp.error is not None:
                metrics.COMMIT_FAILURES.labels(self._name).inc()
                self._log.warning(
                    "offset commit failed",
                    topic=tp.topic,
                    partition=tp.partition,
                    error=str(tp.error),
                )
            else:
                self._committed[(tp.topic, tp.partition)] = tp.offset

    def _forget(self, partitions: list[TopicPartition]) -> set[TP]:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        for tp in gone:
            self._done.pop(tp, None)
            self._returned.pop(tp, None)
            self._committed.pop(tp, None)
        # Records fetched from these partitions but not handed out yet: dropping them
        # loses nothing, the next owner reads from the committed offset.
        for tp in gone:
            self._held_count -= len(self._held.pop(tp, ()))
        return gone

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        if partitions:  # cooperative rebalances also report empty increments
            self._log.info("partitions assigned", partitions=_names(partitions))

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(revoked)
        self._forget(partitions)
        if partitions:
            self._log.info(
                "partitions revoked, done offsets committed", partitions=_names(partitions)
            )

    def _on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: committing now could move its offsets.
        self._forget(partitions)
        self._log.warning("partitions lost", partitions=_names(partitions))

    def _close(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        self._commit(None)
        self._consumer = None
        try:
            consumer.close()
        except KafkaException as exc:
            # After a fatal error the client may refuse to leave cleanly; the group
            # drops it when its session expires, and what is done is committed above.
            self._log.warning("consumer close failed", error=str(exc.args[0]))


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
