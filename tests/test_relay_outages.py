"""The broker and the database die under a running relay. Afterwards every outbox
event is in Kafka exactly once, in per-key order, and the published set equals the
outbox's set. (These restart the shared local services: they run in the default
suite, which runs tests one at a time.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.service_common import read_marker
from cli.services import restart_kafka, restart_postgres
from core.settings import Settings
from tests.conftest import isolate
from tests.kafka_support import (
    assert_exactly_once_in_order,
    read_committed,
    wait_all_published,
    writing,
)
from tests.process_support import Process, settings_env


async def outbox_event_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return {str(r[0]) for r in await conn.exec_driver_sql("SELECT event_id FROM outbox")}


async def run_outage(
    settings: Settings, engine: AsyncEngine, tag: str, outage: Callable[[], None]
) -> None:
    s = isolate(settings, tag)
    s = replace(s, relay=replace(s.relay, batch_size=50, lock_check_ms=200))
    relay = Process("relay", settings_env(s))
    try:
        async with writing(engine, s, survive_outages=True) as ids:
            await asyncio.sleep(2)
            await asyncio.to_thread(outage)
            await asyncio.sleep(3)
        await wait_all_published(engine, timeout_s=120)
    finally:
        code = relay.terminate()
    assert code == 0, relay.log_tail()
    in_outbox = await outbox_event_ids(engine)
    assert set(ids) <= in_outbox
    published = await asyncio.to_thread(read_committed, s, list(s.kafka.topics.event_topics))
    assert_exactly_once_in_order(published, in_outbox)
    assert len(in_outbox) > 100


def needs_our(service: str) -> None:
    """Servers we did not start (your own DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS) are
    never stopped by a test."""
    if read_marker(service) is None:
        pytest.skip(f"{service} was not started by `connectin services up`: not restarting it")


async def test_broker_killed_and_restarted_mid_stream(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    needs_our("kafka")
    await run_outage(settings, clean_db, "broker", lambda: restart_kafka(settings, hard=True))


async def test_postgres_restarted_mid_stream(settings: Settings, clean_db: AsyncEngine) -> None:
    needs_our("postgres")
    await run_outage(settings, clean_db, "pg", lambda: restart_postgres(settings, immediate=True))
