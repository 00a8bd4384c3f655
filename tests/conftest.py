"""Real Postgres and Kafka for every test that needs them (no fakes of our own database
or broker); unit/ tests need neither, and nothing here connects until a test asks.

`DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` when set (what `make test` exports after
`connectin services up`), else testcontainers when a Docker engine answers, else the
local defaults. Each test run gets its own database and its own topic names, so runs
never see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, drop_database, recreate_database
from core.kafka import admin_config
from core.settings import TEST, Settings
from migrations import upgrade
from tests.support.database import truncate_all

# Every helper module, so a fixture defined in any of them reaches every test.
pytest_plugins = (
    "tests.support.api",
    "tests.support.cluster",
    "tests.support.consumers",
    "tests.support.database",
    "tests.support.kafka",
    "tests.support.ops",
    "tests.support.payments",
    "tests.support.ports",
    "tests.support.processes",
)

RUN_ID = uuid.uuid4().hex[:8]
TEST_SHARDS = 4


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    """(database server URL, Kafka bootstrap servers)."""
    have_env = "DATABASE_URL" in os.environ and "KAFKA_BOOTSTRAP_SERVERS" in os.environ
    if have_env or not _docker_answers():
        settings = Settings.from_env()
        yield settings.database.url, settings.kafka.bootstrap_servers
        return
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16") as pg, KafkaContainer().with_kraft() as kafka:
        yield pg.get_connection_url(driver="asyncpg"), kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def settings(service_urls: tuple[str, str]) -> Iterator[Settings]:
    """Settings pointing at a fresh database and run-unique topics."""
    server_url, bootstrap = service_urls
    base = Settings.from_env(
        {**os.environ, "DATABASE_URL": server_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    )
    db_name = f"connectin_test_{RUN_ID}"
    database = asyncio.run(recreate_database(base.database, db_name))
    kafka = base.kafka.namespaced(f"test-{RUN_ID}")
    test_settings = replace(
        base,
        # Child processes get it through Settings.to_env(), so they accept the test secrets.
        environment=TEST,
        database=database,
        kafka=replace(kafka, topics=replace(kafka.topics, partitions=3)),
        # More shards than the default one: leadership, sharing, hand-over and recovery
        # are tested across shards; tests of one shard set it themselves.
        relay=replace(base.relay, metrics_port=0, shards=TEST_SHARDS),
        consumers=replace(base.consumers, metrics_port=0),
        # Every in-process test client is the same address (127.0.0.1): one address
        # budget for the whole suite would throttle unrelated tests. The throttle's
        # own tests set the limits they test.
        auth=replace(base.auth, login_address_attempts_per_minute=1_000_000),
    )
    upgrade(database.url)
    yield test_settings
    asyncio.run(drop_database(base.database, db_name))
    _delete_topics(test_settings)


def _delete_topics(settings: Settings) -> None:
    admin = AdminClient(admin_config(settings.kafka.bootstrap_servers))
    existing = admin.list_topics(timeout=10).topics
    mine = [t for t in existing if f"test-{RUN_ID}" in t]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=30).values():
            future.result()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings.database, application_name="tests")
    yield eng
    await eng.dispose()


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncEngine:
    """An empty schema for tests that count rows."""
    await truncate_all(engine)
    return engine
