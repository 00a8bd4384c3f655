"""Async SQLAlchemy engine and session factory (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from core.settings import DatabaseSettings


def create_engine(
    settings: DatabaseSettings,
    *,
    application_name: str,
    pre_ping: bool = True,
    keep_overflow: bool = False,
) -> AsyncEngine:
    """pre_ping trades a round trip per checkout for fewer errors after a database
    restart; processes that retry every statement anyway (the relay) turn it off.

    keep_overflow keeps the same ceiling (pool_size + max_overflow connections) but
    never closes the ones above pool_size: under sustained concurrency (the API) an
    overflow connection was opened and closed per request, and each paid a connect,
    type introspection and statement preparation (py-spy, `bench api-write`)."""
    pool_size, max_overflow = settings.pool_size, settings.max_overflow
    if keep_overflow:
        pool_size, max_overflow = pool_size + max_overflow, 0
    return create_async_engine(
        settings.url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        connect_args={"server_settings": {"application_name": application_name}},
    )


@asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection as the bare asyncpg driver, each statement its own
    transaction: for hot paths whose work is one statement at a time. They skip the
    session, the BEGIN and COMMIT round trips and SQLAlchemy's result layer (asyncpg's
    records are C tuples). Returned to the pool clean: no transaction was begun on it.

    SQLAlchemy never sees what the driver raises, so it cannot tell a dead connection
    (Postgres restarted, the backend terminated) from a live one: the pool would hand
    the dead one out again, every use failing with "connection is closed". A connection
    found closed after an error is invalidated here instead, and so is one whose
    statement was cancelled midway (its exchange with Postgres may be unfinished)."""
    # The pool's connection itself, not an AsyncConnection around it: checking one out
    # and back through engine.connect() took three greenlet switches and ~45 µs more
    # CPU per use than this (measured in one process), on the API's hottest route.
    pooled = await engine.raw_connection()
    driver = cast(asyncpg.Connection, pooled.driver_connection)
    # A connection whose backend went away while it sat in the pool (Postgres
    # restarted, the backend was terminated) is known closed already: its socket's end
    # was read. Replaced here, it costs no request an error; without this, each pooled
    # connection failed one use after a restart (SQLAlchemy's own statements invalidate
    # the whole pool at the first disconnect, which raw errors never reach). A new
    # connection that cannot be made raises from the checkout itself.
    while driver.is_closed():
        await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)
        pooled = await engine.raw_connection()
        driver = cast(asyncpg.Connection, pooled.driver_connection)
    try:
        yield driver
    except Exception:
        if driver.is_closed():
            await greenlet_spawn(pooled.invalidate)
        raise
    except BaseException:
        await greenlet_spawn(pooled.invalidate)
        raise
    finally:
        # The pool's return path may await the driver (a reset, a close): SQLAlchemy
        # runs it inside a greenlet, as its own AsyncConnection.close() does.
        await greenlet_spawn(pooled.close)


async def next_id(conn: asyncpg.Connection, table: str) -> int:
    """Draw the next value of `table`'s id column, for a row whose event (written in
    the same statement, core.outbox.InsertWithEvent) must carry its id. One statement
    text for every table, so one prepared statement per connection."""
    value = await conn.fetchval("SELECT nextval(pg_get_serial_sequence($1, 'id'))", table)
    return int(value)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def recreate_database(settings: DatabaseSettings, name: str) -> DatabaseSettings:
    """Drop (if present) and create database `name` on the same server; for test runs
    and benchmarks, which each want an empty database of their own."""
    await drop_database(settings, name)
    admin = await asyncpg.connect(settings.with_database("postgres").libpq_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return settings.with_database(name)


async def drop_database(
    settings: DatabaseSettings, name: str, attempts: int = 15, pause_s: float = 1.0
) -> None:
    """FORCE ends the database's own role's sessions, but a backend of another role
    (an autovacuum worker, which the server starts with no role) makes the drop fail
    at once with "must be a member of the role whose process is being terminated":
    such a worker finishes in a moment, so the drop waits for it and tries again."""
    admin = await asyncpg.connect(settings.with_database("postgres").libpq_url)
    try:
        for attempt in range(1, attempts + 1):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == attempts:
                    raise
                await asyncio.sleep(pause_s)
    finally:
        await admin.close()
