"""The seed's own consumer loop reads our topics as it is installed: plain
`pip install aiokafka`, no codec extras. The relay's default compression must be one
it (and KafkaJS without codec plugins) can decode; lz4, zstd and snappy need extras."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from typing import Any

import aiokafka.codec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import UnsupportedCodecError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.kafka import isolate, wait_all_published, write_events
from tests.support.processes import Process, settings_env

SEED_CODECS = ("none", "gzip")


async def seed_consumer_loop(settings: Settings, want: int, timeout_s: float = 60) -> list[str]:
    """The seed integration's loop: AIOKafkaConsumer over the topics, JSON values,
    reading message["event_type"]. Returns the event ids it saw."""
    consumer = AIOKafkaConsumer(
        *settings.kafka.topics.event_topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"seed-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        value_deserializer=lambda raw: json.loads(raw.decode()),
    )
    seen: list[str] = []

    async def loop() -> None:
        async for message in consumer:
            event: dict[str, Any] = message.value
            assert event["event_type"] == "test.happened"
            seen.append(event["event_id"])
            if len(seen) >= want:
                return

    await consumer.start()
    try:
        await asyncio.wait_for(loop(), timeout_s)
    finally:
        await consumer.stop()
    return seen


async def publish(settings: Settings, engine: AsyncEngine, count: int) -> list[str]:
    ids = await write_events(engine, settings, count, keys=20, per_transaction=5)
    relay = Process("relay", settings_env(settings))
    try:
        await wait_all_published(engine)
    finally:
        assert relay.terminate() == 0, relay.log_tail()
    return ids


def test_the_default_codec_is_one_plain_clients_read() -> None:
    assert Settings.from_env({}).relay.compression in SEED_CODECS


@pytest.mark.parametrize("codec", SEED_CODECS)
async def test_seed_consumer_loop_reads_every_event(
    settings: Settings, clean_db: AsyncEngine, codec: str
) -> None:
    s = isolate(settings, f"seed-{codec}")
    s = replace(s, relay=replace(s.relay, compression=codec))
    ids = await publish(s, clean_db, 300)
    seen = await seed_consumer_loop(s, len(ids))
    assert sorted(seen) == sorted(ids)


async def test_lz4_is_what_the_seed_client_cannot_read(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """The control: the loop above really decodes the batches, so an opt-in codec that
    needs extras fails it, exactly as the issue reported."""
    assert not aiokafka.codec.has_lz4(), "the dev install must be plain aiokafka, no lz4 extra"
    s = isolate(settings, "seed-lz4")
    s = replace(s, relay=replace(s.relay, compression="lz4"))
    ids = await publish(s, clean_db, 50)
    with pytest.raises(UnsupportedCodecError):
        await seed_consumer_loop(s, len(ids))
