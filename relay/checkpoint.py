"""The checkpoint record: the outbox ids of a batch, written in the batch's own Kafka
transaction to partition `shard` of the (compacted) checkpoint topic.

After a crash between `commit_transaction()` and marking the rows in Postgres, the new
leader reads the shard's last committed checkpoint and marks exactly those rows, so
they are not published twice (architecture invariant 3).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    shard: int
    outbox_ids: list[int]
    offset: int = -1

    def encode(self) -> bytes:
        return json.dumps(
            {"v": CHECKPOINT_VERSION, "shard": self.shard, "ids": self.outbox_ids},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, offset: int) -> Checkpoint:
        doc = json.loads(raw)
        if doc.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"unknown checkpoint version {doc.get('v')!r}")
        return cls(shard=int(doc["shard"]), outbox_ids=[int(i) for i in doc["ids"]], offset=offset)


def checkpoint_key(shard: int) -> bytes:
    return str(shard).encode()


def read_last_checkpoint(
    bootstrap_servers: str, topic: str, shard: int, timeout_s: float = 30.0
) -> Checkpoint | None:
    """The last committed checkpoint of `shard`, or None if it never committed one.

    Blocking; call it after `init_transactions()` so no transaction of an older leader
    is still open and the read_committed end offset is final.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"connectin-checkpoint-reader-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, shard), timeout=timeout_s, cached=False
        )
        # Each transaction adds one checkpoint and one commit marker; aborted ones add
        # records read_committed hides. Look back a small window, widening it if the
        # tail holds only aborted or control records.
        window = 16
        while True:
            start = max(low, high - window)
            last = _last_in_range(consumer, topic, shard, start, high, timeout_s)
            if last is not None or start == low:
                return last
            window *= 8
    finally:
        consumer.close()


def _last_in_range(
    consumer: Consumer, topic: str, shard: int, start: int, end: int, timeout_s: float
) -> Checkpoint | None:
    if start >= end:
        return None
    consumer.assign([TopicPartition(topic, shard, start)])
    last: Checkpoint | None = None
    while True:
        msg = consumer.poll(timeout_s)
        if msg is None:
            raise TimeoutError(f"no answer reading checkpoints of shard {shard} on {topic}")
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(err)
        value = msg.value()
        offset = msg.offset()
        if value is not None and offset is not None:
            last = Checkpoint.decode(value, offset)
        if offset is not None and offset >= end - 1:
            break
    return last
