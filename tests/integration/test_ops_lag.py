"""Consumer lag read from a real Kafka consumer group: end offset (read_committed) minus
committed offset, per partition."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from confluent_kafka import Producer
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from core.status import StatusCollector
from core.status.model import GroupStatus
from tests.support.kafka import isolate
from tests.support.ops import commit_offsets, create_topic, produce, with_thresholds


def _group(groups: tuple[GroupStatus, ...], consumer: str) -> GroupStatus:
    found = [g for g in groups if g.consumer == consumer]
    assert found, f"group {consumer} not reported; got {[g.consumer for g in groups]}"
    return found[0]


async def test_lag_is_end_minus_committed_per_partition(
    settings: Settings, engine: AsyncEngine
) -> None:
    s = with_thresholds(isolate(settings, "opslag"), max_lag=10)
    topic = s.kafka.topics.user
    await asyncio.to_thread(create_topic, s, topic, 3)
    # N per partition: 10, 7, 5; committed M: 4, 7, never.
    await asyncio.to_thread(produce, s, topic, {0: 10, 1: 7, 2: 5})
    group_id = f"{s.kafka.transactional_id_prefix}-lagtest"
    await asyncio.to_thread(commit_offsets, s, group_id, topic, {0: 4, 1: 7})

    consumers = await StatusCollector(s, engine).consumers()

    group = _group(consumers.groups, "lagtest")
    assert group.group_id == group_id
    assert group.members == 0
    rows = {p.partition: (p.committed, p.end, p.lag) for p in group.partitions}
    assert rows == {0: (4, 10, 6), 1: (7, 7, 0), 2: (None, 5, 5)}
    assert {p.topic for p in group.partitions} == {topic}
    assert group.lag == 11

    findings = StatusCollector(s, engine).findings(consumers=consumers)
    assert [(f.severity, f.kind) for f in findings] == [
        ("breach", "consumer_lag"),
        ("warning", "no_members"),
    ]


async def test_open_transactions_are_not_lag(settings: Settings, engine: AsyncEngine) -> None:
    """The end offset is the last stable offset: records of a transaction still open
    (a relay batch in flight) cannot be consumed yet, so they are not counted."""
    s = isolate(settings, "opslso")
    topic = s.kafka.topics.user
    await asyncio.to_thread(create_topic, s, topic, 1)
    await asyncio.to_thread(produce, s, topic, {0: 3})
    group_id = f"{s.kafka.transactional_id_prefix}-lso"
    await asyncio.to_thread(commit_offsets, s, group_id, topic, {0: 3})

    producer = Producer(
        {
            "bootstrap.servers": s.kafka.bootstrap_servers,
            "transactional.id": f"{s.kafka.transactional_id_prefix}-lso-test",
        }
    )
    await asyncio.to_thread(producer.init_transactions, 30)
    producer.begin_transaction()
    for n in range(5):
        producer.produce(topic, f"open{n}".encode(), partition=0)
    await asyncio.to_thread(producer.flush, 30)
    try:
        open_lag = _group((await StatusCollector(s, engine).consumers()).groups, "lso")
        assert [(p.end, p.lag) for p in open_lag.partitions] == [(3, 0)]
        await asyncio.to_thread(producer.commit_transaction, 30)
        committed = _group((await StatusCollector(s, engine).consumers()).groups, "lso")
        # 5 records + the commit marker; the marker is not a record but sits in the log.
        assert [p.lag for p in committed.partitions] == [committed.partitions[0].end - 3]
        assert committed.partitions[0].lag >= 5
    finally:
        producer.flush(5)


async def test_groups_of_other_deployments_are_left_out(
    settings: Settings, engine: AsyncEngine
) -> None:
    s = isolate(settings, "opsmine")
    topic = s.kafka.topics.user
    await asyncio.to_thread(create_topic, s, topic, 1)
    await asyncio.to_thread(produce, s, topic, {0: 2})
    prefix = s.kafka.transactional_id_prefix
    # Same prefix but another deployment's topic; and our topic under another prefix.
    other = replace(s, kafka=replace(s.kafka, transactional_id_prefix=f"{prefix}-staging"))
    other_topic = f"{topic}-staging"
    await asyncio.to_thread(create_topic, other, other_topic, 1)
    await asyncio.to_thread(commit_offsets, s, f"{prefix}-staging-users", other_topic, {0: 0})
    await asyncio.to_thread(commit_offsets, s, f"not-{prefix}-users", topic, {0: 0})
    await asyncio.to_thread(commit_offsets, s, f"{prefix}-users", topic, {0: 1})

    groups = (await StatusCollector(s, engine).consumers()).groups
    assert [(g.group_id, g.lag) for g in groups] == [(f"{prefix}-users", 1)]
