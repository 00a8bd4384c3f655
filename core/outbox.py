"""The outbox writer: the only way any process emits an event.

The event commits or rolls back with the caller's domain rows (architecture invariant
1), in one of two ways: `enqueue` writes it in the caller's session and never commits;
`insert_with_event` writes it in the same statement as a one-row domain insert.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
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


# The outbox's part of a write, as two CTEs ending in `outbox_row`, written once for
# both statements that run it: `enqueue`'s in the caller's transaction and a domain insert
# composed with it (InsertWithEvent); `bind` spells each parameter. `source` is what the
# sequence upsert selects from: a composed write's domain row, so an insert that writes
# no row writes no event and uses no sequence number either.
#
# The sequence upsert serializes the writers of a key: a second transaction's
# INSERT ... ON CONFLICT DO UPDATE waits on the first one's row lock on
# outbox_key_sequences(key) (or on its uncommitted insert of that row) until it commits,
# and only then returns the next sequence; the outbox id is drawn after that, when the
# INSERT reads the row from `seq`. So per key, ids and sequences follow commit order
# (architecture invariant 2). A pg_advisory_xact_lock on the key used to come first; a
# control with only that lock removed (tests/integration/test_api_order.py) kept every ordering
# test green, so it was redundant and is gone. The sequence lives in its own table so
# retention can delete old events without a key ever reusing a number.
#
# The envelope arrives rendered without its sequence, which only the statement knows,
# and the statement puts it first, as text: the payload is json, kept as written
# (_payload; migration 0005).
_PARAMS = (
    "event_id",
    "topic",
    "key",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "payload",
    "headers",
    "shard",
)


def _outbox_ctes(bind: Callable[[str], str], source: str = "") -> str:
    p = {name: bind(name) for name in _PARAMS}
    return f"""
    seq AS (
        INSERT INTO outbox_key_sequences (key, last_sequence)
        SELECT CAST({p["key"]} AS text), 1 {source}
        ON CONFLICT (key) DO UPDATE
            SET last_sequence = outbox_key_sequences.last_sequence + 1
        RETURNING last_sequence
    ),
    outbox_row AS (
        INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                            sequence, payload, headers, shard)
        SELECT {p["event_id"]}, {p["topic"]}, {p["key"]}, {p["event_type"]},
               {p["aggregate_type"]}, {p["aggregate_id"]}, seq.last_sequence,
               CAST('{{"sequence":' || seq.last_sequence || ','
                    || substr(CAST({p["payload"]} AS text), 2) AS json),
               CAST({p["headers"]} AS json), {p["shard"]}
        FROM seq
        RETURNING id, sequence
    )"""


# One round trip.
_ENQUEUE = text(f"WITH {_outbox_ctes(lambda name: ':' + name)} SELECT id, sequence FROM outbox_row")


@dataclass(frozen=True)
class InsertWithEvent:
    """A domain INSERT of one row and its event's outbox row as one statement, which
    Postgres runs as one transaction: no BEGIN or COMMIT round trip, and nothing of it
    is ever half-written. Its result is the domain insert's RETURNING columns followed
    by `outbox_id` and `sequence`.

    For routes whose whole write is that one row (creating a project, sending a
    message): the event's data must be known before the statement runs, ids included
    (draw them first, core.db.next_id)."""

    sql: str
    domain_params: int

    @classmethod
    def of(cls, domain_insert: str, domain_params: int) -> InsertWithEvent:
        """`domain_insert`: `INSERT ... VALUES ($1 .. $domain_params) RETURNING ...`,
        one row, no ON CONFLICT (an insert that may write no row belongs in a
        transaction with `enqueue`)."""
        first = domain_params + 1
        positions = {name: f"${first + i}" for i, name in enumerate(_PARAMS)}
        ctes = _outbox_ctes(positions.__getitem__, source="FROM domain_row")
        sql = (
            f"WITH domain_row AS ({domain_insert}), {ctes}\n"
            "SELECT domain_row.*, outbox_row.id AS outbox_id, outbox_row.sequence\n"
            "FROM domain_row, outbox_row"
        )
        return cls(sql, domain_params)


def _payload(envelope: Envelope) -> str:
    """The envelope as JSON without its sequence, which the statement puts first
    (`{"sequence":n,` + this text after its opening brace)."""
    fields = envelope.to_dict()
    del fields["sequence"]
    return json.dumps(fields, separators=(",", ":"))


def _outbox_values(event: NewEvent, shards: int) -> dict[str, Any]:
    """The outbox parameters of `event`, by name (_PARAMS)."""
    key = event_key(event.aggregate_type, event.aggregate_id)
    envelope, headers = event.render(datetime.now(UTC), sequence=0)
    return {
        "event_id": event.event_id,
        "topic": event.topic,
        "key": key,
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "payload": _payload(envelope),
        "headers": json.dumps(headers, separators=(",", ":")),
        "shard": shard_of(key, shards),
    }


def _stored(event: NewEvent, values: dict[str, Any], outbox_id: int, sequence: int) -> StoredEvent:
    return StoredEvent(
        outbox_id=outbox_id,
        event_id=event.event_id,
        key=values["key"],
        sequence=sequence,
        shard=values["shard"],
    )


async def enqueue(session: AsyncSession, event: NewEvent, *, shards: int) -> StoredEvent:
    """Add `event` to the outbox inside the caller's transaction."""
    values = _outbox_values(event, shards)
    row = (await session.execute(_ENQUEUE, values)).one()
    return _stored(event, values, row.id, row.sequence)


async def insert_with_event(
    conn: asyncpg.Connection,
    statement: InsertWithEvent,
    domain_args: Sequence[Any],
    event: NewEvent,
    *,
    shards: int,
) -> tuple[asyncpg.Record, StoredEvent]:
    """Run `statement` on a connection outside any transaction: the domain row and
    `event` commit together or not at all. Returns the domain insert's row (the
    statement's whole result row) and the stored event."""
    if len(domain_args) != statement.domain_params:
        raise ValueError(
            f"the domain insert takes {statement.domain_params} values, got {len(domain_args)}"
        )
    values = _outbox_values(event, shards)
    row = await conn.fetchrow(statement.sql, *domain_args, *(values[name] for name in _PARAMS))
    if row is None:
        raise RuntimeError("the domain insert wrote no row, so no event was written either")
    return row, _stored(event, values, row["outbox_id"], row["sequence"])
