"""Read what a topic holds, as a consumer would see it (read_committed), from the start
to the current end; and publish envelopes without the platform (for the consumer
benchmark)."""

from __future__ import annotations

import json
import uuid
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


def publish(bootstrap: str, messages: list[KafkaMessage]) -> None:
    """(topic, key, value, headers) each, acks=all, as fast as the producer goes."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": PARTITIONER,
            "linger.ms": 5,
        }
    )
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
