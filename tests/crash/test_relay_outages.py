"""The broker and the database die under a running relay, on servers of the tests' own
(so these never skip and never disturb anyone else's): every node of the 3-node Kafka
cluster killed -9, or the Postgres postmaster killed -9, while writers keep
committing; then started again. The test waits until the relay has really met the
outage (its log says so) before bringing the servers back. Afterwards every outbox
event is in Kafka exactly once, in per-key order, and the published set equals the
outbox's set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import DatabaseSettings, Settings, async_database_url
from devenv.local_kafka import KafkaCluster
from migrations import upgrade
from tests.support.cluster import OwnPostgres, log_to
from tests.support.consumers import wait_until
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    wait_all_published,
    writing,
)
from tests.support.processes import Process, settings_env

pytestmark = pytest.mark.failover

# What the relay logs when it meets each outage.
KAFKA_SEEN = ("batch aborted", "shard worker ended", "Connect to ipv4")
POSTGRES_SEEN = ("lease connection lost", "database call failed, retrying")


async def outbox_event_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return {str(r[0]) for r in await conn.exec_driver_sql("SELECT event_id FROM outbox")}


async def published(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
        )
        return int(result.scalar_one())


async def run_outage(
    s: Settings,
    engine: AsyncEngine,
    take_down: Callable[[], object],
    bring_back: Callable[[], object],
    seen: tuple[str, ...],
) -> None:
    s = replace(s, relay=replace(s.relay, batch_size=50, lock_check_ms=200))
    relay = Process("relay", settings_env(s))
    try:
        async with writing(engine, s, survive_outages=True) as ids:

            async def flowing(want: int = 200) -> bool:
                return await published(engine) >= want

            await wait_until(flowing, 60, "the relay publishes")
            log_size = relay.log_path.stat().st_size
            await asyncio.to_thread(take_down)

            async def relay_saw_it() -> bool:
                with relay.log_path.open(errors="replace") as log:
                    log.seek(log_size)
                    text = log.read()
                return any(line in text for line in seen)

            await wait_until(relay_saw_it, 60, "the relay meets the outage")
            await asyncio.to_thread(bring_back)
            resumed_from = len(ids)

            async def writing_again() -> bool:
                return len(ids) >= resumed_from + 100

            await wait_until(writing_again, 60, "writers commit again")
        await wait_all_published(engine, timeout_s=120)
        assert relay.alive(), relay.log_tail()
    finally:
        code = relay.terminate()
    assert code == 0, relay.log_tail()
    in_outbox = await outbox_event_ids(engine)
    assert set(ids) <= in_outbox
    await assert_events_exactly_once(s, in_outbox, timeout_s=60)
    assert len(in_outbox) > 300


async def test_every_broker_killed_and_restarted_mid_stream(
    kafka_cluster: KafkaCluster, settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "broker")
    s = replace(s, kafka=replace(s.kafka, bootstrap_servers=kafka_cluster.bootstrap_servers))
    log = log_to(kafka_cluster.home / "cli.log")
    await run_outage(
        s,
        clean_db,
        lambda: kafka_cluster.stop(log, hard=True),
        lambda: kafka_cluster.start(log, timeout=180),
        KAFKA_SEEN,
    )


async def test_postgres_killed_and_restarted_mid_stream(
    own_postgres: OwnPostgres, settings: Settings
) -> None:
    database = DatabaseSettings(url=async_database_url(own_postgres.url))
    await asyncio.to_thread(upgrade, database.url)
    engine = create_engine(database, application_name="tests")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("TRUNCATE outbox, outbox_key_sequences RESTART IDENTITY")
        await run_outage(
            isolate(replace(settings, database=database), "pg"),
            engine,
            own_postgres.kill,
            own_postgres.start,
            POSTGRES_SEEN,
        )
    finally:
        await engine.dispose()
