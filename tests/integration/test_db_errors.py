"""core/db_errors.is_transient against errors a real Postgres raises, through both
ways the platform talks to it (SQLAlchemy and raw asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import create_engine, raw_connection
from core.db_errors import DATABASE_ERRORS, is_transient, sqlstate_of
from core.settings import Settings

Conn = Any
Provoke = Callable[[Conn, Conn], Awaitable[Any]]


async def _exec(conn: Conn, sql: str) -> Any:
    if isinstance(conn, asyncpg.Connection):
        return await conn.execute(sql)
    return await conn.exec_driver_sql(sql)


async def unique_violation(a: Conn, _: Conn) -> None:
    await _exec(a, "CREATE TEMP TABLE IF NOT EXISTS u (id int PRIMARY KEY)")
    await _exec(a, "INSERT INTO u VALUES (1)")
    await _exec(a, "INSERT INTO u VALUES (1)")


async def undefined_table(a: Conn, _: Conn) -> None:
    await _exec(a, "SELECT * FROM no_such_table_anywhere")


async def bad_input(a: Conn, _: Conn) -> None:
    await _exec(a, "SELECT CAST('seven' AS int)")


async def division_by_zero(a: Conn, _: Conn) -> None:
    await _exec(a, "SELECT 1 / 0")


async def terminated_backend(a: Conn, b: Conn) -> None:
    """An admin (or a failover) kills our backend; the next call fails."""
    pid = await _scalar(a, "SELECT pg_backend_pid()")
    await _exec(b, f"SELECT pg_terminate_backend({pid}, 5000)")
    await _exec(a, "SELECT 1")


async def statement_timeout(a: Conn, _: Conn) -> None:
    await _exec(a, "SET statement_timeout = 50")
    await _exec(a, "SELECT pg_sleep(2)")


async def serialization_failure(a: Conn, b: Conn) -> None:
    """Two repeatable-read transactions update the same row: the later one is aborted."""
    await _exec(b, "CREATE TABLE IF NOT EXISTS db_errors_ser (id int PRIMARY KEY, n int)")
    await _exec(b, "INSERT INTO db_errors_ser VALUES (1, 0) ON CONFLICT DO NOTHING")
    await _exec(a, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    await _exec(a, "SELECT n FROM db_errors_ser WHERE id = 1")
    await _exec(b, "UPDATE db_errors_ser SET n = n + 1 WHERE id = 1")
    await _exec(a, "UPDATE db_errors_ser SET n = n + 1 WHERE id = 1")


async def lock_timeout(a: Conn, b: Conn) -> None:
    await _exec(b, "CREATE TABLE IF NOT EXISTS db_errors_lock (id int)")
    await _exec(b, "BEGIN")
    await _exec(b, "LOCK TABLE db_errors_lock IN ACCESS EXCLUSIVE MODE")
    try:
        await _exec(a, "SET lock_timeout = 50")
        await _exec(a, "SELECT * FROM db_errors_lock")
    finally:
        await _exec(b, "ROLLBACK")


async def _scalar(conn: Conn, sql: str) -> Any:
    if isinstance(conn, asyncpg.Connection):
        return await conn.fetchval(sql)
    return (await conn.exec_driver_sql(sql)).scalar_one()


CASES: list[tuple[Provoke, bool, str | None]] = [
    (unique_violation, False, "23505"),
    (undefined_table, False, "42P01"),
    (bad_input, False, "22P02"),
    (division_by_zero, False, "22012"),
    (terminated_backend, True, None),
    (statement_timeout, True, "57014"),
    (serialization_failure, True, "40001"),
    (lock_timeout, True, "55P03"),
]


@pytest.fixture(autouse=True)
async def drop_scratch_tables(engine: AsyncEngine) -> AsyncIterator[None]:
    """The tables two connections must share are real ones: gone after each test, so
    the schema stays the migrations' (tests/integration/test_migrations.py)."""
    yield
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE IF EXISTS db_errors_ser, db_errors_lock")


def _case_id(value: object) -> str:
    return getattr(value, "__name__", str(value))


@asynccontextmanager
async def two_connections(settings: Settings, driver: str) -> AsyncIterator[tuple[Conn, Conn]]:
    if driver == "asyncpg":
        url = settings.database.libpq_url
        a, b = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            yield a, b
        finally:
            for conn in (a, b):
                if not conn.is_closed():
                    await conn.close()
        return
    engine: AsyncEngine = create_async_engine(settings.database.url, poolclass=NullPool)
    try:
        async with engine.connect() as a, engine.connect() as b:
            await a.execution_options(isolation_level="AUTOCOMMIT")
            await b.execution_options(isolation_level="AUTOCOMMIT")
            yield a, b
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", ["sqlalchemy", "asyncpg"])
@pytest.mark.parametrize(("provoke", "transient", "sqlstate"), CASES, ids=_case_id)
async def test_real_postgres_errors_are_classified(
    settings: Settings, driver: str, provoke: Provoke, transient: bool, sqlstate: str | None
) -> None:
    async with two_connections(settings, driver) as (a, b):
        with pytest.raises(Exception) as caught:
            await provoke(a, b)
    error = caught.value
    if sqlstate is not None:
        assert sqlstate_of(error) == sqlstate, repr(error)
    assert is_transient(error) is transient, f"{type(error).__name__}: {error}"


async def test_unreachable_server_is_transient(settings: Settings) -> None:
    """Nothing listens: the connect itself fails (Postgres down or restarting)."""
    parts = urlsplit(settings.database.url)
    netloc = parts.netloc.rsplit("@", 1)[0] + "@127.0.0.1:9"
    url = urlunsplit(parts._replace(netloc=netloc))
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        with pytest.raises(Exception) as caught:
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert is_transient(caught.value), repr(caught.value)
    with pytest.raises(OSError) as raw:
        await asyncio.wait_for(asyncpg.connect(url.replace("+asyncpg", "", 1)), 10)
    assert is_transient(raw.value)


@pytest.mark.parametrize("cancelled", [False, True], ids=["backend terminated", "cancelled"])
async def test_raw_connection_never_hands_out_a_broken_connection_again(
    settings: Settings, engine: AsyncEngine, cancelled: bool
) -> None:
    """core.db.raw_connection's pool (one connection here) sees no driver error: a
    connection whose backend was terminated, or whose statement was cancelled midway,
    must be dropped, not reused. The use that meets the terminated backend fails with
    a transient error; the next one runs on a new backend. Without the invalidation
    every later use fails ("connection is closed")."""
    one = create_engine(
        replace(settings.database, pool_size=1, max_overflow=0),
        application_name="tests-raw",
        pre_ping=False,
    )
    try:
        async with raw_connection(one) as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")
        if cancelled:
            # As a request's task is cancelled when its client goes, or a relay's
            # shard task when its lease is lost.
            async def sleep_in_postgres() -> None:
                async with raw_connection(one) as conn:
                    await conn.execute("SELECT pg_sleep(2)")

            task = asyncio.create_task(sleep_in_postgres())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            # Terminated while in use, so the checkout cannot have seen it closed.
            with pytest.raises(DATABASE_ERRORS) as lost:
                async with raw_connection(one) as conn:
                    async with engine.connect() as admin:
                        await admin.exec_driver_sql(f"SELECT pg_terminate_backend({first}, 5000)")
                    await conn.fetchval("SELECT 1")
            # Which error depends on a race (the FATAL before or with the statement):
            # either way a retry on a new connection is the answer.
            assert is_transient(lost.value), repr(lost.value)
        async with raw_connection(one) as conn:
            second = await conn.fetchval("SELECT pg_backend_pid()")
            assert await conn.fetchval("SELECT 1") == 1
        assert second != first
    finally:
        await one.dispose()


async def test_raw_connection_replaces_pooled_connections_whose_backend_went_away(
    settings: Settings, engine: AsyncEngine
) -> None:
    """As after a Postgres restart: every idle pooled connection's backend is gone.
    The checkout sees each one closed and hands out a new one, so no use fails. (A
    control without the check failed its first use: "connection is closed".)"""
    three = create_engine(
        replace(settings.database, pool_size=3, max_overflow=0),
        application_name="tests-raw-idle",
        pre_ping=False,
    )
    try:

        async def backend_pid() -> int:
            async with raw_connection(three) as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                await asyncio.sleep(0.1)  # held, so the three are distinct connections
                return int(pid)

        pids = set(await asyncio.gather(backend_pid(), backend_pid(), backend_pid()))
        assert len(pids) == 3
        async with engine.connect() as admin:
            for pid in pids:
                await admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 5000)")
        # The backends have exited; let the event loop read their sockets' end.
        await asyncio.sleep(0.5)
        after = set()
        for _ in range(3):
            async with raw_connection(three) as conn:
                after.add(await conn.fetchval("SELECT pg_backend_pid()"))
        assert not after & pids, "a use ran on a terminated backend"
    finally:
        await three.dispose()
