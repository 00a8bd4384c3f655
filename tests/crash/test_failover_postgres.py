"""Postgres loses power under API writes: the postmaster and all its backends are
SIGKILLed at one instant (no shutdown, no checkpoint) while clients create projects,
then started again and recovers from its WAL. On the tests' own Postgres cluster. What
must hold afterwards:

* every request the API acknowledged with 2xx is in the database with its outbox
  event, and that event is in Kafka exactly once (read_committed), per-key order;
* every request that failed wrote both its project and its event or neither. Neither is
  the rule; both happens only when the commit reached the WAL and the crash took its
  answer (the client cannot tell, which is why the API's writes are retried with an
  idempotency key where it matters); the test counts those and prints them;
* the relay and the consumers rode it out without a restart, and the consumers applied
  every event of their topics exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine
from core.settings import DatabaseSettings, Settings, async_database_url
from migrations import upgrade
from tests.support.api import api_client, bearer, user_with_token
from tests.support.cluster import OwnPostgres, consumed_everything
from tests.support.consumers import wait_until
from tests.support.database import truncate_all
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    wait_all_published,
)
from tests.support.processes import Process, settings_env

pytestmark = pytest.mark.failover

WRITERS = 8


@dataclass(frozen=True)
class Attempt:
    title: str
    status: int | None  # None: no HTTP answer at all
    project_id: int | None


async def write_projects(
    client: httpx.AsyncClient, token: str, attempts: list[Attempt], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        title = f"p-{uuid.uuid4().hex}"
        try:
            response = await client.post(
                "/api/v1/projects", json={"title": title}, headers=bearer(token), timeout=30
            )
        except httpx.HTTPError:
            attempts.append(Attempt(title, None, None))
            await asyncio.sleep(0.05)
            continue
        ok = 200 <= response.status_code < 300
        attempts.append(Attempt(title, response.status_code, response.json()["id"] if ok else None))
        if not ok:
            await asyncio.sleep(0.05)


async def stored(engine: AsyncEngine) -> tuple[dict[str, int], dict[str, str]]:
    """Projects by title, and each project.created event's id by its title."""
    async with engine.connect() as conn:
        projects = {t: i for i, t in await conn.execute(text("SELECT id, title FROM projects"))}
        events = {
            t: e
            for e, t in await conn.execute(
                text(
                    "SELECT event_id::text, payload->'data'->>'title' FROM outbox "
                    "WHERE event_type = 'project.created'"
                )
            )
        }
    return projects, events


async def test_postgres_sigkill_under_api_writes(
    own_postgres: OwnPostgres, settings: Settings
) -> None:
    database = DatabaseSettings(url=async_database_url(own_postgres.url))
    await asyncio.to_thread(upgrade, database.url)
    s = isolate(replace(settings, database=database), "pgkill")
    engine = create_engine(s.database, application_name="tests")
    # The cluster is shared with the outage tests: start from empty tables.
    await truncate_all(engine)
    relay = Process("relay", settings_env(s, RELAY_LOCK_CHECK_MS="200"))
    consumers = Process("consumers", settings_env(s))
    attempts: list[Attempt] = []
    try:
        async with api_client(s) as client:
            _, token = await user_with_token(client)
            stop = asyncio.Event()
            writers = [
                asyncio.create_task(write_projects(client, token, attempts, stop))
                for _ in range(WRITERS)
            ]
            try:

                def acknowledged() -> int:
                    return sum(1 for a in attempts if a.project_id is not None)

                async def some_written(want: int = 100) -> bool:
                    return acknowledged() >= want

                await wait_until(some_written, 60, "writes acknowledged")
                await asyncio.to_thread(own_postgres.kill)
                failed_during = len(attempts)
                await asyncio.to_thread(own_postgres.start)

                async def written_after(want: int = acknowledged() + 100) -> bool:
                    return acknowledged() >= want

                await wait_until(written_after, 120, "writes acknowledged after recovery")
            finally:
                stop.set()
                await asyncio.gather(*writers)
        await wait_all_published(engine, timeout_s=120)
        await wait_until(
            lambda: consumed_everything(engine, s), 120, "the consumers apply every event"
        )
        assert relay.alive(), relay.log_tail()
        assert consumers.alive(), consumers.log_tail()
        assert await consumed_everything(engine, s, exactly=True)
        projects, events = await stored(engine)
        async with engine.connect() as conn:
            outbox = {str(r[0]) for r in await conn.exec_driver_sql("SELECT event_id FROM outbox")}
    finally:
        code = relay.terminate()
        consumers_code = consumers.terminate()
        await engine.dispose()
    assert code == 0, relay.log_tail()
    assert consumers_code == 0, consumers.log_tail()
    assert "sequence anomaly" not in consumers.log_path.read_text()
    failed = [a for a in attempts if a.project_id is None]
    assert failed, f"no request failed while Postgres was down ({failed_during} sent before)"
    committed_unanswered = 0
    for attempt in attempts:
        if attempt.project_id is not None:
            assert projects.get(attempt.title) == attempt.project_id, attempt
            assert attempt.title in events, attempt
        else:
            assert (attempt.title in projects) == (attempt.title in events), attempt
            committed_unanswered += attempt.title in projects
    print(f"{len(failed)} requests failed, {committed_unanswered} of them had committed")
    await assert_events_exactly_once(s, outbox, timeout_s=60)
