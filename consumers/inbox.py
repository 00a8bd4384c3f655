"""The consumer's Postgres side: one transaction per batch of records (one partition's
slice of a poll, in offset order) that records the events as processed, checks their
per-key sequences and applies the handlers' effects (architecture invariant 4); and the
dead_letters row of a record that cannot be handled."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.effects import EffectFailed, Effects
from consumers.failpoints import Failpoints
from consumers.incoming import Incoming
from consumers.registry import Handler, HandlerContext
from core.db import session_factory
from core.envelope import Envelope
from core.settings import Settings

Anomaly = Literal["gap", "regression", "late_start"]

_CLAIM = text(
    """
    INSERT INTO processed_events (consumer, event_id)
    SELECT :consumer, event_id FROM unnest(CAST(:event_ids AS uuid[])) AS event_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)

# A statement of its own, after the claim: the claim may have waited for another
# member still committing some of these events (a rebalance), and only a snapshot
# taken after that wait sees the sequences it advanced.
# One primary-key probe per key of the batch, whatever the statistics say. The table
# gains a row per key ever seen, fast after a deploy or a backfill; while its last
# ANALYZE still counts a few hundred rows for this consumer, `consumer = $1 AND key =
# ANY($2)` was planned as a scan of every row of the consumer filtered by key: 73 ms
# per batch at 90k keys, which halved a consumer's rate (bench consumers). The
# LIMIT keeps the subquery from being flattened back into that join.
_LAST_SEQUENCES = text(
    """
    SELECT k.key, s.last_sequence
    FROM unnest(CAST(:keys AS text[])) AS k(key)
    CROSS JOIN LATERAL (
        SELECT last_sequence FROM consumer_key_sequences
        WHERE consumer = :consumer AND key = k.key
        LIMIT 1
    ) AS s
    """
)

# Each key once, at the highest sequence the batch applied for it.
_ADVANCE_ALL = text(
    """
    INSERT INTO consumer_key_sequences (consumer, key, last_sequence)
    SELECT :consumer, key, sequence
    FROM unnest(CAST(:keys AS text[]), CAST(:sequences AS bigint[])) AS s(key, sequence)
    ON CONFLICT (consumer, key) DO UPDATE
        SET last_sequence = GREATEST(consumer_key_sequences.last_sequence,
                                     EXCLUDED.last_sequence)
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


@dataclass(frozen=True, slots=True)
class Delivery:
    """A record whose envelope parsed, with the handlers its event type has."""

    message: Incoming
    event: Envelope
    handlers: tuple[Handler, ...]


@dataclass(frozen=True, slots=True)
class Applied:
    fresh: bool
    anomaly: Anomaly | None = None
    previous: int | None = None


class BatchFailed(Exception):
    """The batch's transaction was rolled back. `index` is the record whose handlers
    or deferred writes failed, None when the failure belongs to no record (the
    claim, the commit, a lost connection)."""

    def __init__(self, index: int | None, cause: BaseException) -> None:
        super().__init__(f"record {index}: {cause!r}")
        self.index = index
        self.cause = cause


def _db_text(raw: bytes | None) -> str:
    """Postgres text holds neither NUL nor invalid UTF-8; the DLQ topic keeps the exact
    bytes."""
    return (raw or b"").decode("utf-8", "replace").replace("\x00", "\ufffd")


class Inbox:
    def __init__(self, engine: AsyncEngine, consumer: str, settings: Settings) -> None:
        self._sessions = session_factory(engine)
        self._consumer = consumer
        self._settings = settings
        self._failpoints = Failpoints(settings.consumers.failpoint)

    async def apply(self, batch: Sequence[Delivery]) -> list[Applied]:
        """One transaction for the whole batch; per record whether it was new and its
        sequence anomaly. Raises BatchFailed after a rollback: nothing of the batch
        was applied or claimed."""
        try:
            async with self._sessions.begin() as session:
                claimed = await session.execute(
                    _CLAIM,
                    {
                        "consumer": self._consumer,
                        "event_ids": [d.event.event_id for d in batch],
                    },
                )
                fresh = set(claimed.scalars())
                last: dict[str, int] = {}
                if fresh:
                    known = await session.execute(
                        _LAST_SEQUENCES,
                        {"consumer": self._consumer, "keys": list({d.event.key for d in batch})},
                    )
                    last = {row.key: row.last_sequence for row in known}
                advanced: dict[str, int] = {}
                effects = Effects()
                results = []
                for index, delivery in enumerate(batch):
                    event = delivery.event
                    if event.event_id not in fresh:
                        results.append(Applied(fresh=False))
                        continue
                    # The same event twice in one batch: the second is a duplicate.
                    fresh.discard(event.event_id)
                    context = HandlerContext(
                        self._consumer,
                        event,
                        delivery.message,
                        session,
                        self._settings,
                        effects,
                        index,
                    )
                    try:
                        for handler in delivery.handlers:
                            await handler(context)
                    except Exception as exc:
                        raise BatchFailed(index, exc) from exc
                    if 0 < index < len(batch) - 1:
                        self._failpoints.hit("mid_batch", index=index, batch_size=len(batch))
                    previous = last.get(event.key)
                    last[event.key] = advanced[event.key] = (
                        event.sequence if previous is None else max(previous, event.sequence)
                    )
                    anomaly = (
                        None if delivery.message.is_replay else classify(previous, event.sequence)
                    )
                    results.append(Applied(fresh=True, anomaly=anomaly, previous=previous))
                try:
                    await effects.flush(session)
                except EffectFailed as failed:
                    raise BatchFailed(failed.index, failed.cause) from failed
                if advanced:
                    await session.execute(
                        _ADVANCE_ALL,
                        {
                            "consumer": self._consumer,
                            "keys": list(advanced),
                            "sequences": list(advanced.values()),
                        },
                    )
        except BatchFailed:
            raise
        except Exception as exc:
            raise BatchFailed(None, exc) from exc
        return results

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
