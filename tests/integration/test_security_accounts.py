"""Accounts (issue 12): usernames unique ignoring case and NFKC spelling, emails
normalised the same way, common and personal passwords refused, login by any spelling
of the username. Every refusal leaves the tables as they were. Migration 0004 stops,
changing nothing, on existing rows that would collide."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import drop_database, recreate_database
from core.settings import DatabaseSettings, Settings
from migrations import upgrade
from tests.support.api import PASSWORD, row_counts

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


async def sign_up(
    client: httpx.AsyncClient, username: str, email: str | None = None, password: str = PASSWORD
) -> httpx.Response:
    address = email or f"{uuid.uuid4().hex[:10]}@example.com"
    return await client.post(
        REGISTER, json={"username": username, "email": address, "password": password}
    )


async def test_usernames_collide_across_case_and_compatibility_spellings(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    first = await sign_up(client, "Alice")
    assert first.status_code == 201, first.text
    assert first.json()["username"] == "Alice"  # shown as typed
    before = await row_counts(clean_db)
    # The last two are fullwidth (U+FF41.., U+FF21..) spellings: NFKC makes them ASCII.
    for spelling in ("alice", "ALICE", "\uff41lice", "\uff21\uff2c\uff29\uff23\uff25"):
        response = await sign_up(client, spelling)
        assert response.status_code == 409, (spelling, response.text)
        assert response.json() == {"error": "conflict", "detail": "username is already taken"}
    assert await row_counts(clean_db) == before


async def test_a_compatibility_spelling_is_stored_in_its_nfkc_form(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    response = await sign_up(client, "\uff22ob_\uff11")  # fullwidth B and 1
    assert response.status_code == 201, response.text
    assert response.json()["username"] == "Bob_1"


@pytest.mark.parametrize(
    "username", ["carol\n", "ca rol", "c\u00e4rol", "ab", "x" * 51, "ca\u200brol"]
)
async def test_usernames_outside_the_pattern_are_400(
    client: httpx.AsyncClient, clean_db: AsyncEngine, username: str
) -> None:
    before = await row_counts(clean_db)
    response = await sign_up(client, username)
    assert response.status_code == 400, response.text
    assert "username" in response.text
    assert await row_counts(clean_db) == before


async def test_concurrent_spellings_of_one_name_give_one_account(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    """The pre-check cannot see uncommitted rows: the unique index on lower(username)
    catches the race, and the error handler names it as the same 409."""
    spellings = ["Racer", "racer", "RACER", "\uff52acer"] * 2
    responses = await asyncio.gather(*(sign_up(client, name) for name in spellings))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert {r.json()["detail"] for r in responses if r.status_code == 409} == {
        "username is already taken"
    }
    counts = await row_counts(clean_db)
    assert counts["users"] == 1 and counts["outbox"] == 1


async def test_emails_are_normalised_before_they_are_compared(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    first = await sign_up(client, "dave", "Dave@Example.COM")
    assert first.status_code == 201, first.text
    assert first.json()["email"] == "dave@example.com"
    before = await row_counts(clean_db)
    for email in ("dave@example.com", " DAVE@example.com ", "\uff44ave@example.com"):
        response = await sign_up(client, f"d{uuid.uuid4().hex[:8]}", email)
        assert response.status_code == 409, (email, response.text)
        assert response.json()["detail"] == "email is already registered"
    assert await row_counts(clean_db) == before


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "too easy to guess"),
        ("password", "too easy to guess"),
        ("        ", "blank"),
        ("qwertyuiop", "too easy to guess"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("frankie_42", "username or email"),  # the username itself
        ("frankie@example.org", "username or email"),  # the email itself
        ("frankie2024", "username or email"),  # built from the username
    ],
)
async def test_common_and_personal_passwords_are_400_and_write_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine, password: str, reason: str
) -> None:
    before = await row_counts(clean_db)
    response = await sign_up(client, "frankie_42", "frankie@example.org", password)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errors"] == [{"key": "password", "message": body["errors"][0]["message"]}]
    assert reason in body["detail"], body
    assert body["detail"].startswith("invalid password: ")
    assert await row_counts(clean_db) == before


async def test_a_long_uncommon_passphrase_is_accepted(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    for password in ("correct horse battery", "violet-tundra-marmalade-7", "x9!" + "q" * 120):
        response = await sign_up(client, f"p{uuid.uuid4().hex[:8]}", password=password)
        assert response.status_code == 201, (password, response.text)


async def test_login_accepts_any_spelling_of_the_username_or_email(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    created = await sign_up(client, "Erin", "erin@example.com")
    assert created.status_code == 201
    for body in (
        {"username": "Erin"},
        {"username": "erin"},
        {"username": "ERIN"},
        {"username": "\uff45rin"},
        {"email": "ERIN@example.com"},
        {"email": "\uff45rin@example.com"},
    ):
        response = await client.post(LOGIN, json={**body, "password": PASSWORD})
        assert response.status_code == 200, (body, response.text)
    wrong = await client.post(LOGIN, json={"username": "erin", "password": "not it at all"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "unauthorized", "detail": "invalid username or password"}
    before = await row_counts(clean_db)
    for body in ({"password": PASSWORD}, {"username": "erin", "email": "erin@example.com"}):
        response = await client.post(LOGIN, json={**body, "password": PASSWORD})
        assert response.status_code == 400, response.text
    assert await row_counts(clean_db) == before


# --- migration 0004 on existing rows ------------------------------------------------


@pytest.fixture
async def database_at_0003(settings: Settings) -> AsyncIterator[DatabaseSettings]:
    """A database of its own, migrated to 0003."""
    name = f"connectin_m4_{uuid.uuid4().hex[:8]}"
    db = await recreate_database(settings.database, name)
    await asyncio.to_thread(upgrade, db.url, "0003")
    try:
        yield db
    finally:
        await drop_database(settings.database, name)


async def _users(url: str, *rows: tuple[str, str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x')", rows
        )
    finally:
        await conn.close()


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_migration_0004_stops_on_colliding_usernames_and_changes_nothing(
    database_at_0003: DatabaseSettings,
) -> None:
    url, async_url = database_at_0003.libpq_url, database_at_0003.url
    await _users(url, ("Alice", "alice1@example.com"), ("alice", "alice2@example.com"))
    with pytest.raises(Exception, match=re.escape("'alice': user ids [1, 2]")) as failure:
        await asyncio.to_thread(upgrade, async_url)
    assert "nothing changed" in str(failure.value)
    assert [r["version_num"] for r in await _fetch(url, "SELECT * FROM alembic_version")] == [
        "0003"
    ]
    # Resolved by a person (here: a rename), the migration goes through.
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE users SET username = 'alice_2' WHERE id = 2")
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, async_url, "0004")
    assert [r["version_num"] for r in await _fetch(url, "SELECT * FROM alembic_version")] == [
        "0004"
    ]


async def test_migration_0004_folds_emails_and_stops_on_colliding_ones(
    database_at_0003: DatabaseSettings,
) -> None:
    url, async_url = database_at_0003.libpq_url, database_at_0003.url
    # Stored by the old code (strip + lower): fullwidth letters stayed as they were.
    await _users(url, ("gina", "\uff47ina@example.com"), ("hank", "hank@example.com"))
    await _users(url, ("gina2", "gina@example.com"))
    with pytest.raises(Exception, match="emails collide"):
        await asyncio.to_thread(upgrade, async_url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM users WHERE username = 'gina2'")
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, async_url)
    emails = await _fetch(url, "SELECT username, email FROM users ORDER BY id")
    assert [tuple(r) for r in emails] == [
        ("gina", "gina@example.com"),
        ("hank", "hank@example.com"),
    ]
