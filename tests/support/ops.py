"""Helpers for the operator tests (tests/integration/test_ops_*.py): outbox and
dead-letter rows written straight into Postgres with chosen ages, a fake relay that
holds shard locks the way a real one does, and a consumer group with known offsets."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.leadership import lock_namespace, relay_application_name
from core.settings import Settings
from core.topics import TopicError, TopicSpec, ensure_topics

_OUTBOX = text(
    """
    INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                        sequence, payload, headers, shard, created_at, published_at)
    VALUES (:event_id, :topic, :key, 'test.happened', 'agg', :key, 1, '{}'::json,
            '{}'::json, :shard, now() - make_interval(secs => :age_s),
            CASE WHEN :published THEN now() END)
    """
)

_DEAD_LETTER = text(
    """
    INSERT INTO dead_letters (source, consumer, topic, partition, "offset", event_id, key,
                              value, headers, error, attempts, replayed_at)
    VALUES ('consumer', 'users', :topic, 0, 0, :event_id, :key, :value,
            CAST(:headers AS jsonb), :error, 3, CASE WHEN :replayed THEN now() END)
    RETURNING id
    """
)


def with_thresholds(
    settings: Settings, *, max_oldest_s: float = 60.0, max_lag: int = 10_000_000
) -> Settings:
    """Lag limit far away by default: other test modules may leave groups with lag."""
    return replace(
        settings,
        status=replace(
            settings.status, max_oldest_unpublished_s=max_oldest_s, max_consumer_lag=max_lag
        ),
    )


def status_env(settings: Settings) -> dict[str, str]:
    """Variables that make Settings.from_env() rebuild `settings`, thresholds included."""
    return {
        **settings.to_env(),
        "STATUS_MAX_OLDEST_UNPUBLISHED_S": str(settings.status.max_oldest_unpublished_s),
        "STATUS_MAX_CONSUMER_LAG": str(settings.status.max_consumer_lag),
    }


async def add_outbox_rows(
    engine: AsyncEngine,
    topic: str,
    shard: int,
    count: int,
    *,
    age_s: float = 0.0,
    published: bool = False,
) -> None:
    async with engine.begin() as conn:
        for _ in range(count):
            await conn.execute(
                _OUTBOX,
                {
                    "event_id": uuid.uuid4(),
                    "topic": topic,
                    "key": f"k-{uuid.uuid4().hex[:8]}",
                    "shard": shard,
                    "age_s": age_s,
                    "published": published,
                },
            )


async def add_dead_letter(
    engine: AsyncEngine, topic: str, *, replayed: bool = False, error: str = "boom"
) -> int:
    event_id = uuid.uuid4()
    value = json.dumps({"event_id": str(event_id), "event_type": "test.happened", "data": {}})
    async with engine.begin() as conn:
        result = await conn.execute(
            _DEAD_LETTER,
            {
                "topic": topic,
                "event_id": event_id,
                "key": "k-1",
                "value": value,
                "headers": json.dumps({"event_id": str(event_id)}),
                "error": error,
                "replayed": replayed,
            },
        )
        return int(result.scalar_one())


async def db_backlog(engine: AsyncEngine) -> dict[int, tuple[int, float]]:
    """shard -> (pending, oldest age in seconds), computed independently of core.status."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT shard, count(*) AS n, "
                "EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)) AS age "
                "FROM outbox WHERE published_at IS NULL GROUP BY shard"
            )
        )
        return {int(r.shard): (int(r.n), float(r.age)) for r in rows}


@asynccontextmanager
async def fake_relay(settings: Settings, shards: list[int]) -> AsyncIterator[int]:
    """A connection named and locked exactly like a relay's lease connection; yields
    its backend pid."""
    prefix = settings.kafka.transactional_id_prefix
    engine = create_async_engine(
        settings.database.url,
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": relay_application_name(prefix)}},
    )
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for shard in shards:
                await _lock(conn, lock_namespace(prefix), shard)
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            yield int(pid)
    finally:
        await engine.dispose()


async def _lock(conn: AsyncConnection, namespace: int, shard: int) -> None:
    taken = await conn.execute(
        text("SELECT pg_try_advisory_lock(:ns, :shard)"), {"ns": namespace, "shard": shard}
    )
    assert taken.scalar_one(), f"shard {shard} is locked by someone else"


def create_topic(settings: Settings, name: str, partitions: int) -> None:
    # A just-created topic can show no partitions for a moment (core/topics.py).
    for _ in range(50):
        try:
            ensure_topics(settings.kafka.bootstrap_servers, [TopicSpec(name, partitions)])
            return
        except TopicError:
            time.sleep(0.1)
    ensure_topics(settings.kafka.bootstrap_servers, [TopicSpec(name, partitions)])


def produce(settings: Settings, topic: str, per_partition: Mapping[int, int]) -> None:
    """Plain (non-transactional) records, so end offset = record count exactly."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    for partition, count in per_partition.items():
        for n in range(count):
            producer.produce(topic, f"v{n}".encode(), partition=partition)
    assert producer.flush(30) == 0, "records not delivered"


def commit_offsets(
    settings: Settings, group_id: str, topic: str, offsets: Mapping[int, int]
) -> None:
    """Commit offsets for a group that has no running member (what a stopped consumer
    group looks like)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()
