"""Read what a topic holds, as a consumer would see it (read_committed), from the start
to the current end; and publish envelopes without the platform (for the consumer
benchmark)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from core.kafka import PARTITIONER


def read_values(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every committed value of `topic` (JSON objects), up to its end at the call."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        values: list[dict[str, Any]] = []
        while pending:
            msg = consumer.poll(timeout_s)
            if msg is None:
                raise TimeoutError(f"{topic}: no message or end of partition in {timeout_s} s")
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition() or 0)
                    continue
                raise RuntimeError(f"{topic}: {err.str()}")
            values.append(json.loads(msg.value() or b"{}"))
        return values
    finally:
        consumer.close()


KafkaMessage = tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]]]


def _producer(bootstrap: str, **config: str | int | bool) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": PARTITIONER,
            "linger.ms": 5,
            **config,
        }
    )


def _deliver(producer: Producer, messages: list[KafkaMessage]) -> None:
    """Produce every message and wait for its delivery; RuntimeError if any failed."""
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failed.append(err.str())

    for topic, key, value, headers in messages:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain it
    if producer.flush(60):
        raise RuntimeError("messages still undelivered after 60 s")
    if failed:
        raise RuntimeError(f"{len(failed)} messages failed, first: {failed[0]}")


def publish(bootstrap: str, messages: list[KafkaMessage]) -> None:
    """(topic, key, value, headers) each, acks=all, as fast as the producer goes."""
    _deliver(_producer(bootstrap), messages)


def publish_at_once(
    bootstrap: str, messages: list[KafkaMessage], before_commit: Callable[[], None]
) -> float:
    """Publish in one Kafka transaction, so a read_committed consumer sees none of the
    messages until all of them are written: a benchmark of the consumer then times the
    consumer alone, not the publisher beside it. Calls `before_commit` and returns the
    wall time (time.time()) just before the commit, the earliest any message can be
    read."""
    producer = _producer(bootstrap, **{"transactional.id": f"bench-publisher-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    try:
        _deliver(producer, messages)
    except RuntimeError:
        producer.abort_transaction(30)
        raise
    before_commit()
    committing = time.time()
    producer.commit_transaction(60)
    return committing


def relay_transactions(bootstrap: str, checkpoint_topic: str, ids: range) -> dict[str, float]:
    """The relay writes one checkpoint record per Kafka transaction, listing the batch's
    outbox ids: how many transactions carried the outbox rows `ids`, and how many
    events each carried on average."""
    batches = [
        in_range
        for value in read_values(bootstrap, checkpoint_topic)
        if (in_range := [i for i in value.get("ids", []) if i in ids])
    ]
    events = sum(len(ids) for ids in batches)
    return {
        "kafka_transactions": len(batches),
        "events_per_transaction": round(events / len(batches), 2) if batches else 0.0,
    }
