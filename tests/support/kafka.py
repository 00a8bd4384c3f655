"""Test helpers that read what really landed in Kafka (read_committed) and write real
events through the real outbox writer."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.leadership import lock_namespace
from core.outbox import NewEvent, enqueue
from core.settings import Settings


def isolate(settings: Settings, tag: str) -> Settings:
    """Settings with topics and transactional ids of their own, for tests that count
    what lands in Kafka."""
    return replace(settings, kafka=settings.kafka.namespaced(f"{tag}-{uuid.uuid4().hex[:6]}"))


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int
    key: str
    envelope: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Raw:
    """A committed record as it is in Kafka (value not decoded: it may be junk)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def text_headers(msg: Message) -> dict[str, str]:
    # A consumed record's headers are always a list of (name, bytes) pairs.
    pairs = cast(list[tuple[str, bytes | None]], msg.headers() or [])
    return {name: (value or b"").decode(errors="replace") for name, value in pairs}


def read_raw(settings: Settings, topics: list[str], timeout_s: float = 20) -> list[Raw]:
    """Every committed record of `topics`, from the beginning to the current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"test-reader-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout_s).topics
        partitions = [
            TopicPartition(t, p, 0) for t in topics if t in metadata for p in metadata[t].partitions
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        remaining = {(tp.topic, tp.partition) for tp in partitions}
        out: list[Raw] = []
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    remaining.discard((msg.topic(), msg.partition()))
                    continue
                raise RuntimeError(err.str())
            out.append(
                Raw(
                    topic=msg.topic() or "",
                    partition=msg.partition() or 0,
                    offset=msg.offset() or 0,
                    key=msg.key(),
                    value=msg.value(),
                    headers=text_headers(msg),
                )
            )
        if remaining:
            raise TimeoutError(f"did not reach the end of {sorted(remaining)}")
        return out
    finally:
        consumer.close()


def read_committed(settings: Settings, topics: list[str], timeout_s: float = 20) -> list[Published]:
    """Every committed event of `topics`, decoded."""
    return [
        Published(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            key=(r.key or b"").decode(),
            envelope=json.loads(r.value or b"{}"),
            headers=r.headers,
        )
        for r in read_raw(settings, topics, timeout_s)
    ]


def assert_exactly_once_in_order(published: list[Published], expected_ids: set[str]) -> None:
    """Each expected event once, nothing else, and per key sequences 1..n in order."""
    ids = [p.envelope["event_id"] for p in published]
    duplicates = {i for i in ids if ids.count(i) > 1} if len(ids) != len(set(ids)) else set()
    assert not duplicates, f"{len(duplicates)} events published more than once"
    assert set(ids) == expected_ids, (
        f"missing {len(expected_ids - set(ids))}, unexpected {len(set(ids) - expected_ids)}"
    )
    by_key: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for p in published:
        by_key[p.key].append((p.partition, p.offset, p.envelope["sequence"]))
    for key, items in by_key.items():
        assert len({part for part, _, _ in items}) == 1, f"key {key} spread over partitions"
        sequences = [seq for _, _, seq in sorted(items)]
        assert sequences == list(range(1, len(sequences) + 1)), f"key {key}: {sequences[:20]}"


async def assert_events_exactly_once(
    settings: Settings, expected_ids: set[str], timeout_s: float = 20
) -> None:
    """Every event topic, read read_committed, holds each expected event once, nothing
    else, and per key sequences 1..n in order."""
    topics = list(settings.kafka.topics.event_topics)
    published = await asyncio.to_thread(read_committed, settings, topics, timeout_s)
    assert_exactly_once_in_order(published, expected_ids)


async def write_events(
    engine: AsyncEngine,
    settings: Settings,
    count: int,
    keys: int,
    *,
    payload_bytes: int = 300,
    per_transaction: int = 1,
) -> list[str]:
    """Commit `count` events over `keys` aggregates; returns their event ids."""
    sessions = async_sessionmaker(engine)
    topics = settings.kafka.topics.event_topics
    filler = "x" * payload_bytes
    ids: list[str] = []
    for start in range(0, count, per_transaction):
        async with sessions.begin() as session:
            for _ in range(min(per_transaction, count - start)):
                n = random.randrange(keys)
                event = NewEvent(
                    topic=topics[n % len(topics)],
                    event_type="test.happened",
                    aggregate_type="agg",
                    aggregate_id=str(n),
                    data={"n": n, "filler": filler},
                    user_id=n,
                )
                await enqueue(session, event, shards=settings.relay.shards)
                ids.append(str(event.event_id))
    return ids


@asynccontextmanager
async def writing(
    engine: AsyncEngine, settings: Settings, *, survive_outages: bool = False
) -> AsyncIterator[list[str]]:
    """Writers commit events on 25 overlapping keys for as long as the block runs; yields
    the list of committed event ids (it grows). With `survive_outages`, a batch that
    fails while Postgres is down is not counted: compare Kafka with what the outbox
    really holds, since a commit whose answer was lost may still have happened."""
    ids: list[str] = []
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            try:
                ids.extend(
                    await write_events(
                        engine, settings, 20, keys=25, per_transaction=random.randint(1, 5)
                    )
                )
            except (OperationalError, DBAPIError, OSError):
                if not survive_outages:
                    raise
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(write())
    try:
        yield ids
    finally:
        stop.set()
        await task


async def wait_all_published(engine: AsyncEngine, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            left = (
                await conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            ).scalar_one()
        if left == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{left} outbox rows still unpublished after {timeout_s}s")


async def shards_by_pid(engine: AsyncEngine, s: Settings) -> dict[int, int]:
    """Shards each relay backend leads: the advisory locks of `s`'s namespace it holds."""
    namespace = lock_namespace(s.kafka.transactional_id_prefix)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                f"AND objsubid = 2 AND classid = ({namespace})::int::oid GROUP BY pid"
            )
        )
        return {int(pid): int(n) for pid, n in rows}
