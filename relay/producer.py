"""One transactional Kafka producer per shard, and a batch as one Kafka transaction.

Blocking (librdkafka waits inside commit/abort/init); the shard loop runs these in a
worker thread so the event loop keeps serving leases, metrics and signals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from core.kafka import relay_transactional_id, transactional_producer_config
from core.outbox_store import OutboxRow
from core.settings import KafkaSettings, RelaySettings
from relay.checkpoint import Checkpoint, checkpoint_key
from relay.failpoints import Failpoints

CALL_TIMEOUT_S = 10.0
# Per shard producer; ~40,000 events of ~400 bytes, far more than a batch.
QUEUE_KBYTES = 16 * 1024

# Errors that mean this one message can never be accepted, whatever we retry.
UNPUBLISHABLE = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_MSG,
}


class ProducerFenced(RuntimeError):
    """Fatal for this producer: another leader took the shard, or the producer broke.
    The shard must be dropped and re-acquired with a new producer."""


class OutcomeUnknown(ProducerFenced):
    """The commit neither succeeded nor failed in time (broker unreachable): the batch
    may or may not be visible. Never retry it with this producer: drop the shard, and
    the next leader's init_transactions settles the transaction and its checkpoint read
    tells whether the batch committed, exactly as after a crash."""


class BatchAborted(RuntimeError):
    """The transaction was aborted; nothing of the batch is visible. Retry it."""

    def __init__(self, reason: str, unpublishable: dict[int, str]) -> None:
        super().__init__(reason)
        self.unpublishable = unpublishable


@dataclass
class BatchResult:
    receipts: list[tuple[int, int, int]] = field(default_factory=list)
    failures: dict[int, KafkaError] = field(default_factory=dict)

    def on_delivery(self, outbox_id: int, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failures[outbox_id] = err
            return
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        self.receipts.append((outbox_id, partition, offset))


def producer_config(kafka: KafkaSettings, relay: RelaySettings, shard: int) -> dict[str, object]:
    return {
        **transactional_producer_config(kafka, relay_transactional_id(kafka, shard)),
        "compression.type": relay.compression,
        "linger.ms": relay.linger_ms,
        "transaction.timeout.ms": relay.transaction_timeout_ms,
        "message.max.bytes": relay.max_message_bytes + 64 * 1024,
        # Bounded: a slow broker makes produce() push back (BufferError, waited out
        # in publish) instead of growing memory. The byte cap is what bounds the RSS:
        # a shard's producer holds at most QUEUE_KBYTES of unsent events.
        "queue.buffering.max.messages": max(10 * relay.batch_size, 10_000),
        "queue.buffering.max.kbytes": max(QUEUE_KBYTES, 2 * relay.max_message_bytes // 1024),
    }


class ShardProducer:
    def __init__(self, kafka: KafkaSettings, relay: RelaySettings, shard: int) -> None:
        self.shard = shard
        self._checkpoint_topic = kafka.topics.checkpoint
        # Each blocking librdkafka call is bounded well below transaction.timeout.ms, so
        # a stop never waits long on a broker that does not answer.
        self._timeout_s = min(CALL_TIMEOUT_S, relay.transaction_timeout_ms / 2000)
        self._producer = Producer(producer_config(kafka, relay, shard))
        self._in_transaction = False
        self._failpoints = Failpoints(relay.failpoint)

    def init_transactions(self) -> None:
        """Registers the transactional id: fences and aborts any older producer of it."""
        try:
            self._producer.init_transactions(self._timeout_s)
        except KafkaException as exc:
            raise ProducerFenced(f"init_transactions failed: {exc.args[0].str()}") from exc

    def publish(self, rows: list[OutboxRow], unmarked: Sequence[int] = ()) -> BatchResult:
        """Events plus the checkpoint in one transaction; returns after the commit.
        `unmarked`: rows of earlier committed batches whose mark is not known to have
        committed; the checkpoint names them too (relay/checkpoint.py).

        Raises BatchAborted (retry the batch) or ProducerFenced (drop the shard)."""
        result = BatchResult()
        failpoints = self._failpoints
        halfway = rows[len(rows) // 2].id
        try:
            failpoints.hit("before_produce")
            self._producer.begin_transaction()
            self._in_transaction = True
            produce = self._producer.produce
            for row in rows:
                if row.id == halfway:
                    failpoints.hit("mid_batch")
                while True:
                    try:
                        produce(
                            row.topic,
                            row.value,
                            row.key,
                            headers=row.headers,
                            on_delivery=partial(result.on_delivery, row.id),
                        )
                        break
                    except BufferError:
                        # The local queue is at its cap: wait for deliveries to free it.
                        self._producer.poll(0.01)
                    except KafkaException as exc:
                        # librdkafka refuses some messages before sending (e.g. too
                        # large): note which, so the retry parks it instead of failing
                        # for ever.
                        result.failures[row.id] = exc.args[0]
                        raise
            checkpoint = Checkpoint(self.shard, [row.id for row in rows], list(unmarked))
            produce(
                self._checkpoint_topic,
                checkpoint.encode(),
                checkpoint_key(self.shard),
                partition=self.shard,
            )
            self._commit()
            failpoints.hit("after_commit")
        except KafkaException as exc:
            self._handle(exc.args[0], result)
        return result

    def _commit(self) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                self._producer.commit_transaction(max(0.1, deadline - time.monotonic()))
                self._in_transaction = False
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                retriable = err.retriable() and not err.txn_requires_abort() and not err.fatal()
                if not retriable:
                    raise
                # A retriable commit error (e.g. timeout) leaves the outcome open;
                # librdkafka lets us call commit again until it settles.
                if time.monotonic() >= deadline:
                    raise OutcomeUnknown(f"commit unsettled: {err.str()}") from exc

    def _handle(self, err: KafkaError, result: BatchResult) -> None:
        if err.fatal() or err.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
            KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ):
            raise ProducerFenced(f"{err.name()}: {err.str()}")
        self.abort()
        unpublishable = {
            oid: f"{e.name()}: {e.str()}"
            for oid, e in result.failures.items()
            if e.code() in UNPUBLISHABLE
        }
        raise BatchAborted(f"{err.name()}: {err.str()}", unpublishable)

    def abort(self) -> None:
        """Abort the open transaction, if any; fatal errors surface as ProducerFenced."""
        if not self._in_transaction:
            return
        try:
            self._producer.abort_transaction(self._timeout_s)
            self._in_transaction = False
        except KafkaException as exc:
            # Whatever the reason, a transaction we cannot abort is one we cannot reuse
            # the producer after: the next leader's init_transactions settles it.
            raise ProducerFenced(f"abort failed: {exc.args[0].str()}") from exc

    def close(self) -> None:
        """Drop queued messages; an open transaction is aborted by the broker on timeout
        or by the next leader's init_transactions."""
        self._producer.purge()
        self._producer.flush(0)
