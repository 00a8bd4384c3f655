"""The checkpoint record, written in each batch's own Kafka transaction to partition
`shard` of the (compacted) checkpoint topic: the batch's outbox ids, and the ids of
every earlier batch whose Postgres mark was not yet known to have committed when the
record was built (the mark of batch N runs while batch N+1 is fetched and produced).

So the shard's last committed checkpoint names every row that is in Kafka but may not
be marked in Postgres. A new leader marks all of them before publishing anything, and
a crash at any point repeats nothing (architecture invariant 3).

Versions: 1 (relays before the overlapped mark) names one batch, and such a relay
marked each batch before it began the next, so a version-1 record also names every row
its writer may have left unmarked: a relay of this version recovers from it as from
its own, and a rolling upgrade publishes nothing twice. A relay of version 1 refuses a
version-2 record (it raises and releases the shard without publishing), so a shard
moving back to an old relay stalls rather than repeats; a version this relay does not
know is refused the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from core.kafka import base_consumer_config, checkpoint_reader_group
from core.settings import KafkaSettings

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, CHECKPOINT_VERSION)


@dataclass(frozen=True)
class Checkpoint:
    shard: int
    # Kept apart from `unmarked` (not one list) so recovery can log how many rows an
    # interrupted overlapped mark left behind.
    outbox_ids: list[int]
    # Earlier batches, committed to Kafka before this one, whose mark was still open.
    unmarked: list[int] = field(default_factory=list)
    offset: int = -1

    def to_mark(self) -> list[int]:
        """Every row a crash may have left in Kafka but unmarked in Postgres."""
        return [*self.unmarked, *self.outbox_ids]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": CHECKPOINT_VERSION,
                "shard": self.shard,
                "ids": self.outbox_ids,
                "unmarked": self.unmarked,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, offset: int) -> Checkpoint:
        doc = json.loads(raw)
        version = doc.get("v")
        # `True == 1` in Python: a JSON true must not pass for version 1.
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ValueError(
                f"checkpoint at offset {offset} has version {version!r}; this relay reads"
                f" {READABLE_VERSIONS}: a newer relay wrote it, let one of those lead"
            )
        return cls(
            shard=int(doc["shard"]),
            outbox_ids=[int(i) for i in doc["ids"]],
            # Version 1 has no such field: its writer left at most its last batch unmarked.
            unmarked=[int(i) for i in doc.get("unmarked", [])],
            offset=offset,
        )


def checkpoint_key(shard: int) -> bytes:
    return str(shard).encode()


def read_last_checkpoint(
    kafka: KafkaSettings, shard: int, timeout_s: float = 30.0
) -> Checkpoint | None:
    """The last committed checkpoint of `shard` (on `kafka.topics.checkpoint`), or None
    if it never committed one.

    Blocking; call it after `init_transactions()` so no transaction of an older leader
    is still open and the read_committed end offset is final.
    """
    topic = kafka.topics.checkpoint
    consumer = Consumer(
        {**base_consumer_config(kafka, checkpoint_reader_group()), "enable.partition.eof": True}
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
