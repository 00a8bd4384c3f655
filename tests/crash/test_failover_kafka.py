"""Failover on a replicated cluster: kill -9 a broker under relay load, then restart it.

The tests' own 3-node cluster (RF 3, min.insync.replicas 2, replicated transaction
state and offsets). One victim per test: the leader of a busy partition, or the
transaction coordinator of a relay shard. What must hold, checked against the real
topics and tables: every outbox event is in Kafka exactly once (read_committed), per
key sequences 1..n; the relay and the consumers kept running (no restart) and the
consumers applied every event of their topic exactly once, with no sequence anomaly.
CONNECTIN_FAILOVER_ROUNDS kills and restarts that many times per test (default 1).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from core.kafka import admin_config
from core.settings import Settings
from devenv.local_kafka import KafkaCluster
from tests.support.cluster import consumed_everything, restart_node
from tests.support.consumers import wait_until
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    wait_all_published,
    writing,
)
from tests.support.processes import Process, settings_env

ROUNDS = int(os.environ.get("CONNECTIN_FAILOVER_ROUNDS", "1"))
TRANSACTION_STATE_PARTITIONS = 10  # transaction.state.log.num.partitions of the cluster

pytestmark = pytest.mark.failover


def java_string_hash(value: str) -> int:
    h = 0
    for unit in value.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_of(cluster: KafkaCluster, transactional_id: str) -> int:
    """The broker coordinating `transactional_id`: the leader of its partition of
    __transaction_state (Kafka: abs(id.hashCode) % partitions)."""
    h = java_string_hash(transactional_id)
    partition = 0 if h == -(1 << 31) else abs(h) % TRANSACTION_STATE_PARTITIONS
    admin = AdminClient(admin_config(cluster.bootstrap_servers))
    topic = admin.list_topics("__transaction_state", timeout=10).topics["__transaction_state"]
    return int(topic.partitions[partition].leader)


def leader_of(cluster: KafkaCluster, topic: str, partition: int) -> int:
    admin = AdminClient(admin_config(cluster.bootstrap_servers))
    return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


async def published(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.exec_driver_sql(
                    "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("victim", ["partition-leader", "transaction-coordinator"])
async def test_broker_killed_under_relay_load(
    kafka_cluster: KafkaCluster, settings: Settings, clean_db: AsyncEngine, victim: str
) -> None:
    s = isolate(settings, f"fo-{victim[:4]}")
    s = replace(
        s,
        kafka=replace(s.kafka, bootstrap_servers=kafka_cluster.bootstrap_servers),
        relay=replace(s.relay, batch_size=50, lock_check_ms=200),
    )
    topics = s.kafka.topics
    relay = Process("relay", settings_env(s))
    consumers = Process("consumers", settings_env(s))
    try:
        async with writing(clean_db, s) as ids:
            for _ in range(ROUNDS):

                async def flowing(want: int = await published(clean_db) + 200) -> bool:
                    return await published(clean_db) >= want

                await wait_until(flowing, 120, "the relay publishes")
                if victim == "partition-leader":
                    node = leader_of(kafka_cluster, topics.user, 0)
                else:
                    node = coordinator_of(
                        kafka_cluster, f"{s.kafka.transactional_id_prefix}-relay-0"
                    )
                kafka_cluster.node(node).stop(print, hard=True)

                async def flowing_without_it(want: int = await published(clean_db) + 200) -> bool:
                    return await published(clean_db) >= want

                # RF 3, min ISR 2: the relay keeps committing with one node dead.
                await wait_until(flowing_without_it, 120, f"publishing with node {node} dead")
                await asyncio.to_thread(restart_node, kafka_cluster, node)
        await wait_all_published(clean_db, timeout_s=120)
        await wait_until(
            lambda: consumed_everything(clean_db, s), 120, "the consumers apply every event"
        )
        assert relay.alive(), relay.log_tail()
        assert consumers.alive(), consumers.log_tail()
    finally:
        relay_code = relay.terminate()
        consumers_code = consumers.terminate()
    assert relay_code == 0, relay.log_tail()
    assert consumers_code == 0, consumers.log_tail()
    assert "sequence anomaly" not in consumers.log_path.read_text()
    assert await consumed_everything(clean_db, s, exactly=True)
    # Topic creation used the cluster's size: three copies of every partition.
    admin = AdminClient(admin_config(kafka_cluster.bootstrap_servers))
    for name in (*topics.event_topics, topics.checkpoint):
        meta = admin.list_topics(name, timeout=10).topics[name]
        assert {len(p.replicas) for p in meta.partitions.values()} == {3}, name
    await assert_events_exactly_once(s, set(ids), timeout_s=60)
