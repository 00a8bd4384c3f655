"""The outbox table's reading side, the one owner of its SQL besides the writer
(core/outbox.py): the relay reads a shard's unpublished rows, marks them published and
parks unpublishable rows in dead_letters; the relay's gauges and `connectin status` read
the backlog. Every statement is its own short transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db import raw_connection


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which
# makes building one of a fetch's thousand rows ~4x as costly (0.8 against 0.2 us).
@dataclass(slots=True)
class OutboxRow:
    id: int
    event_id: str
    topic: str
    key: str
    value: str
    headers: dict[str, str | bytes | None]
    chars: int

    def exceeds(self, limit: int) -> bool:
        """Whether key + value + headers take more than `limit` bytes in UTF-8. Counting
        characters first settles nearly every row without encoding it."""
        if self.chars * 4 <= limit:
            return False
        return self.size_bytes() > limit

    def size_bytes(self) -> int:
        headers = sum(len(k) + len(str(v or "").encode()) for k, v in self.headers.items())
        return len(self.key.encode()) + len(self.value.encode()) + headers


# By status, never by an id cursor: a transaction that commits after a later id was
# published is still picked up. Served by the partial index ix_outbox_unpublished.
# `shard = ANY(array)` with `ORDER BY shard, id`, not `shard = $1 ORDER BY id`: with the
# plain form the planner may walk the primary key and filter, hoping unpublished rows
# are spread out, when they all sit at the end (42 ms instead of 0.3 ms on 100k
# published rows, bench/growth.py). Only the partial index yields (shard, id) order.
# `$3` excludes the rows of a batch whose mark is still running beside this fetch
# (architecture invariant 3): committed to Kafka, named by the next checkpoint, but
# not yet marked. A filter on the index scan, so excluded rows cost no payload work.
#
# Headers are parsed here, not unfolded by Postgres (jsonb_each_text + array_agg cost
# Postgres ~5 ms per 1000 rows): Postgres is shared by every relay and writer, while
# relays scale out, so per-row work belongs in the relay.
_FETCH = """
    SELECT id, event_id::text, topic, key, payload::text AS value, headers::text AS headers
    FROM outbox
    WHERE shard = ANY($1::int[]) AND published_at IS NULL AND id <> ALL($3::bigint[])
    ORDER BY shard, id
    LIMIT $2
"""

# One statement in autocommit: no BEGIN/COMMIT round trips around it. Joined on the
# primary key only: with `AND o.published_at IS NULL` in the WHERE, the planner can read
# the outbox through the partial index of unpublished rows, and when its statistics
# under-count them (a backlog built faster than autovacuum analyzes, e.g. in a Kafka
# outage) it hashes the whole backlog for every batch: 0.5-2 s per mark of 1000 rows
# on a 200k backlog instead of ~10 ms (bench relay-drain). A row published meanwhile
# (recovered by a new leader, dead-lettered) keeps its mark and receipt instead.
# Every mark is a non-HOT update (published_at is in the partial index's predicate),
# which writes the row again and an entry in each full index.
_MARK = """
    UPDATE outbox AS o
    SET published_at = coalesce(o.published_at, now()),
        receipt = CASE WHEN o.published_at IS NULL
                       THEN jsonb_build_object('partition', r.partition, 'offset', r.offset)
                       ELSE o.receipt END
    FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS r(id, partition, "offset")
    WHERE o.id = r.id
"""

_MARK_RECOVERED = text(
    """
    UPDATE outbox
    SET published_at = now(), receipt = CAST(:receipt AS jsonb)
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
    RETURNING id
    """
)

_DEAD_LETTER = text(
    """
    WITH parked AS (
        UPDATE outbox
        SET published_at = now(),
            receipt = jsonb_build_object('dead_letter', true, 'reason', CAST(:error AS text))
        WHERE id = :id AND published_at IS NULL
        RETURNING id, event_id, topic, key, payload::text AS value, headers
    )
    INSERT INTO dead_letters (source, topic, outbox_id, event_id, key, value, headers, error)
    SELECT 'relay', topic, id, event_id, key, value, headers, :error FROM parked
    """
)

_SHARDS_WITH_PENDING = """
    SELECT s FROM unnest($1::int[]) AS s
    WHERE EXISTS (SELECT 1 FROM outbox WHERE shard = s AND published_at IS NULL)
"""

# The relay's gauges and `connectin status` read this one query, so they agree. It runs
# on the partial index of unpublished rows, as small as the backlog.
_PENDING = text(
    """
    SELECT shard, count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest_s
    FROM outbox WHERE published_at IS NULL GROUP BY shard
    """
)


class OutboxStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def fetch(self, shard: int, limit: int, exclude: Sequence[int] = ()) -> list[OutboxRow]:
        """Up to `limit` unpublished rows of `shard` in id order, but none of `exclude`."""
        async with raw_connection(self._engine) as conn:
            records = await conn.fetch(_FETCH, [shard], limit, list(exclude))
        # msgspec decodes the same JSON to the same dict as json.loads, ~4x faster: the
        # headers' parse was the largest part of the relay's own CPU in a drain.
        loads = msgspec.json.decode
        return [
            OutboxRow(r[0], r[1], r[2], r[3], r[4], loads(r[5]), len(r[3]) + len(r[4]) + len(r[5]))
            for r in records
        ]

    async def mark_published(self, receipts: list[tuple[int, int, int]]) -> None:
        """receipts: (outbox id, partition, offset) per published row, one statement."""
        ids, partitions, offsets = (list(col) for col in zip(*receipts, strict=True))
        async with raw_connection(self._engine) as conn:
            await conn.execute(_MARK, ids, partitions, offsets)

    async def mark_recovered(self, ids: Sequence[int], receipt: dict[str, Any]) -> set[int]:
        """Mark `ids` that are still unpublished; returns the ids it marked."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                _MARK_RECOVERED, {"ids": list(ids), "receipt": json.dumps(receipt)}
            )
            return {int(r[0]) for r in result}

    async def dead_letter(self, outbox_id: int, error: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_DEAD_LETTER, {"id": outbox_id, "error": error})

    async def shards_with_pending(self, conn: AsyncConnection, shards: list[int]) -> set[int]:
        """On the caller's long-lived connection: this runs up to 1000 times a second
        when idle, and a pool checkout (with its reset round trip) would double it."""
        raw = await conn.get_raw_connection()
        records = await raw.driver_connection.fetch(_SHARDS_WITH_PENDING, shards)  # type: ignore[union-attr]
        return {int(r[0]) for r in records}

    async def pending(self) -> dict[int, tuple[int, float]]:
        """shard -> (unpublished count, age in seconds of the oldest unpublished)."""
        async with self._engine.connect() as conn:
            return await pending(conn)


async def pending(conn: AsyncConnection) -> dict[int, tuple[int, float]]:
    """shard -> (unpublished count, age in seconds of the oldest unpublished), on the
    caller's connection (the status reads all its parts on one)."""
    result = await conn.execute(_PENDING)
    return {int(r.shard): (int(r.pending), float(r.oldest_s)) for r in result}
