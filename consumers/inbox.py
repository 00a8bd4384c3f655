"""The consumer's Postgres side: one transaction per record that records the event as
processed, checks its per-key sequence and applies the handlers' effects (docs/architecture.md
invariant 4); and the dead_letters row of a record that cannot be handled."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.incoming import Incoming
from consumers.registry import Handler, HandlerContext
from core.db import session_factory
from core.envelope import Envelope
from core.settings import Settings

Anomaly = Literal["gap", "regression", "late_start"]

# One round trip. The sequence is only advanced when the event is new, and `previous`
# reads the statement's snapshot, i.e. the value before this event.
_CLAIM = text(
    """
    WITH fresh AS (
        INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)
        ON CONFLICT DO NOTHING
        RETURNING event_id
    ), previous AS (
        SELECT last_sequence FROM consumer_key_sequences
        WHERE consumer = :consumer AND key = :key
    ), advanced AS (
        INSERT INTO consumer_key_sequences (consumer, key, last_sequence)
        SELECT :consumer, :key, :sequence FROM fresh
        ON CONFLICT (consumer, key) DO UPDATE
            SET last_sequence = GREATEST(consumer_key_sequences.last_sequence,
                                         EXCLUDED.last_sequence)
    )
    SELECT EXISTS (SELECT 1 FROM fresh) AS fresh, (SELECT last_sequence FROM previous) AS previous
    """
)

# A redelivery of a record already parked (crash after this insert, before the offset
# commit) finds its row and does not add a second one.
_DEAD_LETTER = text(
    """
    WITH existing AS (
        SELECT id FROM dead_letters
        WHERE consumer = :consumer AND topic = :topic AND partition = :partition
          AND "offset" = :offset
    ), inserted AS (
        INSERT INTO dead_letters (source, consumer, topic, partition, "offset", event_id,
                                  key, value, headers, error, attempts)
        SELECT 'consumer', :consumer, :topic, :partition, :offset, :event_id, :key, :value,
               CAST(:headers AS jsonb), :error, :attempts
        WHERE NOT EXISTS (SELECT 1 FROM existing)
        RETURNING id
    )
    SELECT id, true AS new FROM inserted UNION ALL SELECT id, false FROM existing
    """
)

# A parked event still uses up its sequence number: the next event of the key is not
# a gap.
_ADVANCE = text(
    """
    INSERT INTO consumer_key_sequences (consumer, key, last_sequence)
    VALUES (:consumer, :key, :sequence)
    ON CONFLICT (consumer, key) DO UPDATE
        SET last_sequence = GREATEST(consumer_key_sequences.last_sequence,
                                     EXCLUDED.last_sequence)
    """
)


def classify(previous: int | None, sequence: int) -> Anomaly | None:
    if previous is None:
        # First event of this key seen by this consumer: only 1 is in line.
        return "late_start" if sequence > 1 else None
    if sequence == previous + 1:
        return None
    return "gap" if sequence > previous + 1 else "regression"


@dataclass(frozen=True)
class Applied:
    fresh: bool
    anomaly: Anomaly | None = None
    previous: int | None = None


def _db_text(raw: bytes | None) -> str:
    """Postgres text holds neither NUL nor invalid UTF-8; the DLQ topic keeps the exact
    bytes."""
    return (raw or b"").decode("utf-8", "replace").replace("\x00", "\ufffd")


class Inbox:
    def __init__(self, engine: AsyncEngine, consumer: str, settings: Settings) -> None:
        self._sessions = session_factory(engine)
        self._consumer = consumer
        self._settings = settings

    async def apply(
        self, message: Incoming, event: Envelope, handlers: tuple[Handler, ...]
    ) -> Applied:
        async with self._sessions.begin() as session:
            claim = (
                await session.execute(
                    _CLAIM,
                    {
                        "consumer": self._consumer,
                        "event_id": event.event_id,
                        "key": event.key,
                        "sequence": event.sequence,
                    },
                )
            ).one()
            if not claim.fresh:
                return Applied(fresh=False)
            context = HandlerContext(self._consumer, event, message, session, self._settings)
            for handler in handlers:
                await handler(context)
        anomaly = None if message.is_replay else classify(claim.previous, event.sequence)
        return Applied(fresh=True, anomaly=anomaly, previous=claim.previous)

    async def park(
        self, message: Incoming, event: Envelope | None, error: str, attempts: int
    ) -> tuple[int, bool]:
        """Insert the dead_letters row; (its id, whether it is new)."""
        event_id: uuid.UUID | None = event.event_id if event else message.header_event_id
        async with self._sessions.begin() as session:
            row = (
                await session.execute(
                    _DEAD_LETTER,
                    {
                        "consumer": self._consumer,
                        "topic": message.topic,
                        "partition": message.partition,
                        "offset": message.offset,
                        "event_id": event_id,
                        "key": message.key_text,
                        "value": _db_text(message.value),
                        "headers": json.dumps({k: _db_text(v) for k, v in message.headers}),
                        "error": error.replace("\x00", "\ufffd"),
                        "attempts": attempts,
                    },
                )
            ).one()
            if event is not None:
                await session.execute(
                    _ADVANCE,
                    {"consumer": self._consumer, "key": event.key, "sequence": event.sequence},
                )
        return int(row.id), bool(row.new)
