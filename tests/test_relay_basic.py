"""The relay publishes every outbox row once, in per-key order, with its receipt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from core.lifecycle import StopSignal
from core.settings import Settings
from relay.service import Relay
from tests.conftest import isolate
from tests.kafka_support import (
    assert_exactly_once_in_order,
    read_committed,
    wait_all_published,
    write_events,
)


@asynccontextmanager
async def running_relay(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Relay]:
    stop = StopSignal()
    relay = Relay(settings, engine, stop)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        stop.stop("test over")
        await asyncio.wait_for(task, 30)


def all_topics(settings: Settings) -> list[str]:
    return list(settings.kafka.topics.event_topics)


async def test_publishes_each_event_once_in_key_order(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "basic")
    ids = await write_events(clean_db, s, 500, keys=20, per_transaction=5)
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert_exactly_once_in_order(published, set(ids))
    async with clean_db.connect() as conn:
        receipts = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM outbox WHERE receipt ? 'partition' AND receipt ? 'offset'"
            )
        ).scalar_one()
    assert receipts == 500


async def test_headers_carry_cloudevents_attributes(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "headers")
    ids = await write_events(clean_db, s, 3, keys=1)
    async with running_relay(s, clean_db):
        await wait_all_published(clean_db)
    published = await asyncio.to_thread(read_committed, s, all_topics(s))
    assert {p.envelope["event_id"] for p in published} == set(ids)
    for p in published:
        h = p.headers
        assert h["event_id"] == h["ce_id"] == p.envelope["event_id"]
        assert h["event_type"] == h["ce_type"] == "test.happened"
        assert h["ce_specversion"] == "1.0" and h["content-type"] == "application/json"
        assert h["ce_source"] == "/connectin/agg" and h["ce_time"].endswith("Z")
        assert p.key == f"agg:{p.envelope['aggregate_id']}"


