"""The outbox writer: the only way any process emits an event.

It takes the caller's session and never commits: the event commits or rolls back
with the caller's domain rows (architecture invariant 1).
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.envelope import SCHEMA_VERSION, Envelope, event_key, kafka_headers


@dataclass(frozen=True)
class NewEvent:
    topic: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    data: dict[str, Any]
    user_id: int | None = None
    traceparent: str | None = None
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # The version of the event type's contract (core/events) the data follows.
    schema_version: int = SCHEMA_VERSION

    def render(self, now: datetime, *, sequence: int) -> tuple[Envelope, dict[str, str]]:
        """The Kafka value and headers of this event at `now`."""
        envelope = Envelope(
            event_id=self.event_id,
            event_type=self.event_type,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.aggregate_id,
            sequence=sequence,
            schema_version=self.schema_version,
            timestamp=now,
            user_id=self.user_id,
            data=self.data,
        )
        headers = kafka_headers(
            event_id=self.event_id,
            event_type=self.event_type,
            aggregate_type=self.aggregate_type,
            time=now,
            traceparent=self.traceparent,
        )
        return envelope, headers


@dataclass(frozen=True)
class StoredEvent:
    outbox_id: int
    event_id: uuid.UUID
    key: str
    sequence: int
    shard: int


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and restarts (Python's hash() is salted)."""
    return zlib.crc32(key.encode()) % shards


# One round trip. The sequence upsert serializes the writers of a key: a second
# transaction's INSERT ... ON CONFLICT DO UPDATE waits on the first one's row lock on
# outbox_key_sequences(key) (or on its uncommitted insert of that row) until it commits,
# and only then returns the next sequence; the outbox id is drawn after that, when the
# INSERT reads the row from `seq`. So per key, ids and sequences follow commit order
# (architecture invariant 2). A pg_advisory_xact_lock on the key used to come first; a
# control with only that lock removed (tests/integration/test_api_order.py) kept every ordering
# test green, so it was redundant and is gone. The sequence lives in its own table so
# retention can delete old events without a key ever reusing a number.
_ENQUEUE = text(
    """
    WITH seq AS (
        INSERT INTO outbox_key_sequences (key, last_sequence)
        VALUES (:key, 1)
        ON CONFLICT (key) DO UPDATE
            SET last_sequence = outbox_key_sequences.last_sequence + 1
        RETURNING last_sequence
    )
    INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                        sequence, payload, headers, shard)
    SELECT :event_id, :topic, :key, :event_type, :aggregate_type, :aggregate_id,
           seq.last_sequence,
           jsonb_set(CAST(:payload AS jsonb), '{sequence}', to_jsonb(seq.last_sequence)),
           CAST(:headers AS jsonb), :shard
    FROM seq
    RETURNING id, sequence
    """
)


async def enqueue(session: AsyncSession, event: NewEvent, *, shards: int) -> StoredEvent:
    """Add `event` to the outbox inside the caller's transaction."""
    key = event_key(event.aggregate_type, event.aggregate_id)
    now = datetime.now(UTC)
    # sequence 1 is replaced in the statement by the key's next sequence
    envelope, headers = event.render(now, sequence=1)
    shard = shard_of(key, shards)
    row = (
        await session.execute(
            _ENQUEUE,
            {
                "event_id": event.event_id,
                "topic": event.topic,
                "key": key,
                "event_type": event.event_type,
                "aggregate_type": event.aggregate_type,
                "aggregate_id": event.aggregate_id,
                "payload": json.dumps(envelope.to_dict(), separators=(",", ":")),
                "headers": json.dumps(headers, separators=(",", ":")),
                "shard": shard,
            },
        )
    ).one()
    return StoredEvent(
        outbox_id=row.id, event_id=event.event_id, key=key, sequence=row.sequence, shard=shard
    )
