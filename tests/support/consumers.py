"""Helpers for the consumer tests: real envelopes produced transactionally to the real
topics, the consumers run in-process (tests.support.processes runs them as a killable
subprocess), and row counts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.dead_letter import dlq_topic
from consumers.registry import Registry
from consumers.service import ConsumerService
from core.envelope import SCHEMA_VERSION, Envelope, kafka_headers
from core.kafka import transactional_producer_config
from core.lifecycle import StopSignal
from core.settings import Settings
from core.topics import TopicSpec, ensure_topics
from tests.support.kafka import Raw, isolate, read_raw


def consumer_settings(
    settings: Settings, tag: str, *, max_attempts: int = 3, retry_backoff_ms: int = 20
) -> Settings:
    s = isolate(settings, tag)
    return replace(
        s,
        consumers=replace(
            s.consumers, max_attempts=max_attempts, retry_backoff_ms=retry_backoff_ms
        ),
    )


def ensure_event_topics(s: Settings) -> None:
    """Producing first needs the topics (the broker never auto-creates them)."""
    names = s.kafka.topics.event_topics
    specs = [TopicSpec(n, s.kafka.topics.partitions) for n in names]
    specs += [TopicSpec(dlq_topic(n), s.kafka.topics.partitions) for n in names]
    ensure_topics(s.kafka.bootstrap_servers, specs)


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)
    event_id: str | None = None


def envelope_record(
    topic: str,
    event_type: str,
    aggregate: tuple[str, str | int],
    sequence: int,
    data: dict[str, Any],
    *,
    user_id: int | None = None,
    event_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
    traceparent: str | None = None,
) -> Record:
    """A record exactly as the relay publishes it."""
    event_id = event_id or uuid.uuid4()
    now = timestamp or datetime.now(UTC)
    aggregate_type, aggregate_id = aggregate[0], str(aggregate[1])
    envelope = Envelope(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=sequence,
        schema_version=SCHEMA_VERSION,
        timestamp=now,
        user_id=user_id,
        data=data,
    )
    headers = kafka_headers(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        time=now,
        traceparent=traceparent,
    )
    return Record(
        topic=topic,
        key=envelope.key.encode(),
        value=json.dumps(envelope.to_dict()).encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
        event_id=str(event_id),
    )


class TxProducer:
    """A transactional producer configured as the relay's (core/kafka.py)."""

    def __init__(self, s: Settings, name: str) -> None:
        self._producer = Producer(
            {
                **transactional_producer_config(
                    s.kafka, f"{s.kafka.transactional_id_prefix}-test-{name}"
                ),
                "linger.ms": 1,
            }
        )
        self._producer.init_transactions(30)

    def send(self, records: list[Record]) -> None:
        """All records in one committed transaction."""
        self._producer.begin_transaction()
        for r in records:
            self._producer.produce(r.topic, r.value, r.key, headers=r.headers)
        self._producer.commit_transaction(30)


async def produce(s: Settings, records: list[Record], name: str = "main") -> None:
    def work() -> None:
        TxProducer(s, name).send(records)

    await asyncio.to_thread(work)


@asynccontextmanager
async def running_consumers(
    s: Settings,
    engine: AsyncEngine,
    registry: Registry | None = None,
    instance_id: str | None = None,
) -> AsyncIterator[StopSignal]:
    """The consumers service in this process; stopped (and checked) on exit."""
    from consumers.handlers import default_registry

    stop = StopSignal()
    service = ConsumerService(
        s, engine, stop, registry or default_registry(), instance_id=instance_id
    )
    task = asyncio.create_task(service.run())
    try:
        yield stop
    finally:
        stop.stop("test over")
        code = await asyncio.wait_for(task, 60)
        assert code == 0, "consumer service failed"


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30, what: str = "condition"
) -> float:
    """Poll the async predicate `check` until it holds; the seconds it took. Raises
    TimeoutError after `timeout_s`. Tests wait on conditions, never on fixed sleeps."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} not reached after {timeout_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def create_users(engine: AsyncEngine, count: int, tag: str) -> list[int]:
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                """
                INSERT INTO users (username, email, password_hash)
                SELECT :tag || '-' || n, :tag || '-' || n || '@example.com', 'x'
                FROM generate_series(1, :count) AS n
                RETURNING id
                """
            ),
            {"tag": f"{tag}-{uuid.uuid4().hex[:6]}", "count": count},
        )
        return [r.id for r in result]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


Consumed = Raw


def read_topic(s: Settings, topic: str, timeout_s: float = 20) -> list[Consumed]:
    """Everything committed in `topic` now, from the beginning."""
    return read_raw(s, [topic], timeout_s)


def committed_offsets(s: Settings, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        got = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()


def end_offsets(s: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka.bootstrap_servers,
            "group.id": f"test-ends-{uuid.uuid4()}",
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()
