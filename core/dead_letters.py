"""Dead letters: listing them and replaying them to their original topic.

Shared by `connectin dlq` and the API's /ops/dlq. A replay re-produces the stored
key, value and headers to the original topic and sets `replayed_at`; consumers that
already processed the event skip it (processed_events), so replaying twice is safe.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.kafka import base_producer_config
from core.settings import KafkaSettings

# Marks a record as an operator's replay: consumers expect its sequence number to be
# behind the key's latest and do not count it as an anomaly.
REPLAY_HEADER = "connectin_replay_of"
DELIVERY_TIMEOUT_S = 30.0

Headers = list[tuple[str, str | bytes | None]]


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge a record."""


def producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    """A replayed event goes where the relay put the key's others (core/kafka.py)."""
    return {
        **base_producer_config(kafka),
        "linger.ms": 0,
        # Fail a send within bounds instead of librdkafka's 5 minutes, so callers can
        # report it and retry.
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
    }


def deliver(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, headers: Headers
) -> tuple[int, int]:
    """Produce one record and block until Kafka acknowledges it; (partition, offset)."""
    outcome: list[tuple[KafkaError | None, Message]] = []
    producer.produce(
        topic, value, key, headers=headers, on_delivery=lambda e, m: outcome.append((e, m))
    )
    producer.flush(DELIVERY_TIMEOUT_S + 5)
    if not outcome:
        raise DeliveryError(f"no acknowledgement from Kafka for a record to {topic}")
    err, msg = outcome[0]
    if err is not None:
        raise DeliveryError(f"{err.name()}: {err.str()}")
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None:
        raise DeliveryError(f"Kafka acknowledged a record to {topic} without a position")
    return partition, offset


@dataclass(frozen=True)
class DeadLetter:
    id: int
    source: str
    consumer: str | None
    topic: str
    partition: int | None
    offset: int | None
    outbox_id: int | None
    event_id: uuid.UUID | None
    key: str | None
    error: str
    attempts: int
    value_bytes: int
    created_at: datetime
    replayed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "consumer": self.consumer,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "outbox_id": self.outbox_id,
            "event_id": None if self.event_id is None else str(self.event_id),
            "key": self.key,
            "error": self.error,
            "attempts": self.attempts,
            "value_bytes": self.value_bytes,
            "created_at": self.created_at.isoformat(),
            "replayed_at": None if self.replayed_at is None else self.replayed_at.isoformat(),
        }


_COLUMNS = """id, source, consumer, topic, partition, "offset", outbox_id, event_id, key,
              error, attempts, octet_length(value) AS value_bytes, created_at, replayed_at"""

_LIST = text(
    f"""
    SELECT {_COLUMNS} FROM dead_letters
    WHERE (CAST(:topic AS text) IS NULL OR topic = :topic)
      AND (NOT :pending_only OR replayed_at IS NULL)
    ORDER BY id DESC
    LIMIT :limit
    """
)

_PENDING_BY_TOPIC = text(
    "SELECT topic, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY topic"
)

_PENDING_IDS = text("SELECT id FROM dead_letters WHERE replayed_at IS NULL ORDER BY id")

# Row-locked while its record is produced, so two operators replaying the same dead
# letter at once do it one after the other.
_LOCK_ONE = text(
    """SELECT id, topic, key, value, headers FROM dead_letters WHERE id = :id FOR UPDATE"""
)

_MARK_REPLAYED = text("UPDATE dead_letters SET replayed_at = now() WHERE id = :id")


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        source=row.source,
        consumer=row.consumer,
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        outbox_id=row.outbox_id,
        event_id=row.event_id,
        key=row.key,
        error=row.error,
        attempts=row.attempts,
        value_bytes=row.value_bytes,
        created_at=row.created_at,
        replayed_at=row.replayed_at,
    )


async def list_dead_letters(
    engine: AsyncEngine,
    *,
    topic: str | None = None,
    pending_only: bool = False,
    limit: int = 100,
) -> list[DeadLetter]:
    """Newest first; `pending_only` leaves out the ones already replayed."""
    async with engine.connect() as conn:
        result = await conn.execute(
            _LIST, {"topic": topic, "pending_only": pending_only, "limit": limit}
        )
        return [_dead_letter(r) for r in result]


async def pending_by_topic(engine: AsyncEngine) -> dict[str, int]:
    """Dead letters not replayed yet, per original topic."""
    async with engine.connect() as conn:
        return {r.topic: int(r.n) for r in await conn.execute(_PENDING_BY_TOPIC)}


@dataclass(frozen=True)
class ReplayResult:
    id: int
    topic: str | None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "ok": self.ok,
            "error": self.error,
        }


Progress = Callable[[int, int, ReplayResult], None]


async def replay(
    engine: AsyncEngine,
    kafka: KafkaSettings,
    ids: Sequence[int] | None = None,
    *,
    on_progress: Progress | None = None,
) -> list[ReplayResult]:
    """Replay the given dead letters, or every one not replayed yet when `ids` is None.

    Each is produced and acknowledged before its `replayed_at` is set, one at a time,
    in id order (the order they failed in)."""
    if ids is None:
        async with engine.connect() as conn:
            ids = [r.id for r in await conn.execute(_PENDING_IDS)]
    producer = Producer(producer_config(kafka))
    results: list[ReplayResult] = []
    try:
        for done, dead_letter_id in enumerate(ids, start=1):
            result = await _replay_one(engine, producer, dead_letter_id)
            results.append(result)
            if on_progress is not None:
                on_progress(done, len(ids), result)
    finally:
        await asyncio.to_thread(producer.flush, 5)
    return results


async def _replay_one(engine: AsyncEngine, producer: Producer, dead_letter_id: int) -> ReplayResult:
    async with engine.begin() as conn:
        row = (await conn.execute(_LOCK_ONE, {"id": dead_letter_id})).one_or_none()
        if row is None:
            return ReplayResult(dead_letter_id, None, error="no such dead letter")
        headers: Headers = [
            (name, str(value).encode())
            for name, value in row.headers.items()
            if name != REPLAY_HEADER
        ]
        headers.append((REPLAY_HEADER, str(dead_letter_id).encode()))
        key = None if row.key is None else row.key.encode()
        try:
            partition, offset = await asyncio.to_thread(
                deliver, producer, row.topic, row.value.encode(), key, headers
            )
        except DeliveryError as exc:
            return ReplayResult(dead_letter_id, row.topic, error=str(exc))
        await conn.execute(_MARK_REPLAYED, {"id": dead_letter_id})
        return ReplayResult(dead_letter_id, row.topic, partition, offset)
