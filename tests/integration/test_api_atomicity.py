"""Invariant 1: a domain change and its outbox row commit or roll back together.

The failure is injected after both the domain insert and the real outbox insert ran,
so a handler or session that committed early (or in two transactions) would leave
rows behind and fail these tests. Writes in the request's session are failed in Python
after `enqueue` returned; every write, the one-statement ones (core.outbox.
InsertWithEvent) included, is also failed inside Postgres by a trigger that raises
once the outbox row is inserted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import api.events
from core.outbox import NewEvent, StoredEvent, enqueue
from tests.support.api import (
    PASSWORD,
    bearer,
    register,
    row_counts,
    user_with_token,
)


class InjectedFailure(RuntimeError):
    pass


Write = Callable[[httpx.AsyncClient, dict[str, Any]], Awaitable[httpx.Response]]


async def _register(client: httpx.AsyncClient, w: dict[str, Any]) -> httpx.Response:
    body = {"username": "newcomer", "email": "newcomer@example.com", "password": PASSWORD}
    return await client.post("/api/v1/auth/register", json=body)


async def _login(client: httpx.AsyncClient, w: dict[str, Any]) -> httpx.Response:
    body = {"email": w["bob"]["email"], "password": PASSWORD}
    return await client.post("/api/v1/auth/login", json=body)


async def _project(client: httpx.AsyncClient, w: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/projects", json={"title": "t"}, headers=w["bob_auth"])


async def _apply(client: httpx.AsyncClient, w: dict[str, Any]) -> httpx.Response:
    path = f"/api/v1/projects/{w['project_id']}/applications"
    return await client.post(path, json={"cover_letter": "hi"}, headers=w["bob_auth"])


async def _message(client: httpx.AsyncClient, w: dict[str, Any]) -> httpx.Response:
    body = {"recipient_id": w["alice"]["id"], "body": "hello"}
    return await client.post("/api/v1/messages", json=body, headers=w["bob_auth"])


WRITES: dict[str, Write] = {
    "register": _register,
    "login": _login,
    "create project": _project,
    "apply": _apply,
    "send message": _message,
}
# Creating a project and sending a message are one statement each (domain row and
# outbox row), with no Python between the two inserts to fail in: only the trigger
# reaches them.
ONE_STATEMENT_WRITES = ("create project", "send message")
SESSION_WRITES = [name for name in WRITES if name not in ONE_STATEMENT_WRITES]


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    alice, alice_token = await user_with_token(client)
    bob, bob_token = await user_with_token(client)
    project = await client.post(
        "/api/v1/projects", json={"title": "p"}, headers=bearer(alice_token)
    )
    return {
        "alice": alice,
        "bob": bob,
        "bob_auth": bearer(bob_token),
        "project_id": project.json()["id"],
    }


@pytest.mark.parametrize("write", SESSION_WRITES)
async def test_failure_after_the_outbox_insert_leaves_no_rows(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:
    inserted: list[StoredEvent] = []

    async def enqueue_then_fail(session: AsyncSession, event: NewEvent, *, shards: int) -> Any:
        inserted.append(await enqueue(session, event, shards=shards))
        # Both rows are visible inside the transaction at this point.
        assert (await session.execute(text("SELECT count(*) FROM outbox"))).scalar_one() > 0
        raise InjectedFailure("injected after the domain and outbox inserts")

    before = await row_counts(clean_db)
    monkeypatch.setattr(api.events, "enqueue", enqueue_then_fail)
    response = await WRITES[write](client, world)
    monkeypatch.undo()

    assert inserted, "the injected enqueue was not reached"
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal server error"}
    assert await row_counts(clean_db) == before


@asynccontextmanager
async def failing_outbox_insert(clean_db: AsyncEngine) -> AsyncIterator[None]:
    """Every outbox insert raises in Postgres after the row is written, until the test
    ends."""
    async with clean_db.begin() as conn:
        await conn.execute(
            text(
                """
                CREATE FUNCTION test_fail_after_outbox_insert() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'injected after the outbox insert of %', NEW.event_type;
                END $$
                """
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER test_fail_after_outbox_insert AFTER INSERT ON outbox "
                "FOR EACH ROW EXECUTE FUNCTION test_fail_after_outbox_insert()"
            )
        )
    try:
        yield
    finally:
        async with clean_db.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_fail_after_outbox_insert ON outbox"))
            await conn.execute(text("DROP FUNCTION test_fail_after_outbox_insert()"))


@pytest.mark.parametrize("write", list(WRITES))
async def test_failure_in_postgres_after_the_outbox_insert_leaves_no_rows(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    world: dict[str, Any],
    write: str,
) -> None:
    before = await row_counts(clean_db)
    async with failing_outbox_insert(clean_db):
        response = await WRITES[write](client, world)
    assert response.status_code == 500, response.text
    assert response.json() == {"error": "internal_error", "detail": "internal server error"}
    assert await row_counts(clean_db) == before
    # The failed write's connection went back to the pool clean: the same write
    # succeeds now, with both of its rows.
    again = await WRITES[write](client, world)
    assert again.status_code in (200, 201), again.text
    after = await row_counts(clean_db)
    assert after["outbox"] == before["outbox"] + 1


@pytest.mark.parametrize("write", list(WRITES))
async def test_success_commits_domain_row_and_event_in_one_transaction(
    client: httpx.AsyncClient, clean_db: AsyncEngine, world: dict[str, Any], write: str
) -> None:
    before = await row_counts(clean_db)
    response = await WRITES[write](client, world)
    assert response.status_code in (200, 201), response.text
    after = await row_counts(clean_db)
    assert after["outbox"] == before["outbox"] + 1
    # The newest outbox row and the newest row of the written table carry the same
    # xmin: the id of the transaction that wrote them.
    table = {
        "register": "users",
        "login": None,
        "create project": "projects",
        "apply": "project_applications",
        "send message": "messages",
    }[write]
    if table is None:
        return
    assert after[table] == before[table] + 1
    async with clean_db.connect() as conn:
        outbox_xmin = (
            await conn.execute(text("SELECT xmin::text FROM outbox ORDER BY id DESC LIMIT 1"))
        ).scalar_one()
        domain_xmin = (
            await conn.execute(text(f"SELECT xmin::text FROM {table} ORDER BY id DESC LIMIT 1"))
        ).scalar_one()
    assert outbox_xmin == domain_xmin


async def test_a_failed_request_does_not_leak_into_the_next(
    client: httpx.AsyncClient, clean_db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rolled-back session must not hand a dirty connection to the next request."""

    async def fail(session: AsyncSession, event: NewEvent, *, shards: int) -> Any:
        raise InjectedFailure("boom")

    monkeypatch.setattr(api.events, "enqueue", fail)
    failed = await client.post(
        "/api/v1/auth/register",
        json={"username": "ghost", "email": "ghost@example.com", "password": PASSWORD},
    )
    assert failed.status_code == 500
    monkeypatch.undo()
    user = await register(client, "ghost")
    counts = await row_counts(clean_db)
    assert counts["users"] == 1 and counts["outbox"] == 1
    assert user["username"] == "ghost"
