"""A rolling upgrade publishes nothing twice: a relay of the previous version (checkpoint
version 1) is killed after committing a batch to Kafka and before marking it; the relay
of this version that takes the shard recovers from that version-1 checkpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Producer
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from core.topics import ensure_topics
from relay.service import relay_topics
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    wait_all_published,
    write_events,
)
from tests.support.processes import Process, settings_env

SHARD = 0


def previous_relay_batch(s: Settings, rows: Sequence[Any]) -> None:
    """What a version-1 relay wrote for its last batch of SHARD, byte for byte: the
    events and the checkpoint `{"v": 1, "shard", "ids"}` in one transaction under the
    shard's transactional id; then it died, so the rows stay unmarked."""
    producer = Producer(
        {
            "bootstrap.servers": s.kafka.bootstrap_servers,
            "transactional.id": f"{s.kafka.transactional_id_prefix}-relay-{SHARD}",
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for _, topic, key, value, headers in rows:
        producer.produce(topic, value, key, headers=list(json.loads(headers).items()))
    checkpoint = {"v": 1, "shard": SHARD, "ids": [row[0] for row in rows]}
    producer.produce(
        s.kafka.topics.checkpoint,
        json.dumps(checkpoint, separators=(",", ":")).encode(),
        str(SHARD).encode(),
        partition=SHARD,
    )
    producer.commit_transaction(30)


async def test_new_relay_recovers_from_a_previous_version_checkpoint(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "upgrade")
    ids = await write_events(clean_db, s, 300, keys=20)
    await asyncio.to_thread(ensure_topics, s.kafka.bootstrap_servers, relay_topics(s), 30.0)
    async with clean_db.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT id, topic, key, payload::text, headers::text FROM outbox "
                f"WHERE shard = {SHARD} ORDER BY id LIMIT 40"
            )
        ).all()
    assert len(rows) == 40
    await asyncio.to_thread(previous_relay_batch, s, rows)

    relay = Process("relay", settings_env(s))
    try:
        await wait_all_published(clean_db)
    finally:
        assert relay.terminate() == 0, relay.log_tail()

    await assert_events_exactly_once(s, set(ids))
    async with clean_db.connect() as conn:
        recovered = {
            int(r[0])
            for r in await conn.exec_driver_sql(
                "SELECT id FROM outbox WHERE receipt ? 'recovered_from_checkpoint'"
            )
        }
    assert recovered == {int(row[0]) for row in rows}
