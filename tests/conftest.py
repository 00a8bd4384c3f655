"""Real Postgres and Kafka for every test (no fakes of our own database or broker).

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
from devenv.local_kafka import KafkaCluster
from migrations import upgrade
from tests.cluster_support import (
    OwnPostgres,
    start_kafka_cluster,
    start_own_postgres,
    stop_kafka_cluster,
    stop_own_postgres,
)
from tests.process_support import Process

RUN_ID = uuid.uuid4().hex[:8]


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
        relay=replace(base.relay, metrics_port=0),
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
    admin = AdminClient(admin_config(settings.kafka))
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


TABLES = (
    "users",
    "projects",
    "project_applications",
    "messages",
    "notifications",
    "stripe_customers",
    "payments",
    "subscriptions",
    "stripe_events",
    "outbox",
    "outbox_key_sequences",
    "processed_events",
    "consumer_key_sequences",
    "dead_letters",
    "login_throttle",
    "idempotency_claims",
)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncEngine:
    """An empty schema for tests that count rows."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    return engine


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A test that fails half-way must not leave a relay or consumer running: it would
    keep working on (or against) the next tests' data."""
    yield
    Process.kill_leftovers()


def isolate(settings: Settings, tag: str) -> Settings:
    """Settings with topics and transactional ids of their own, for tests that count
    what lands in Kafka."""
    return replace(settings, kafka=settings.kafka.namespaced(f"{tag}-{uuid.uuid4().hex[:6]}"))


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A 3-node Kafka cluster of the failover tests' own (free ports, temporary
    directory): they kill its nodes. Stopped and deleted at the end, whatever happens."""
    cluster = start_kafka_cluster(3)
    try:
        yield cluster
    finally:
        stop_kafka_cluster(cluster)


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[OwnPostgres]:
    """A Postgres cluster of the failover tests' own, which they SIGKILL."""
    pg = start_own_postgres()
    try:
        yield pg
    finally:
        stop_own_postgres(pg)
