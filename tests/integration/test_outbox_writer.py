"""The outbox writer's row belongs to the caller's transaction, whether the writer's
statement opens that transaction or joins one an earlier statement opened: it is
visible inside it and commits or rolls back with it, never alone. Composed with a
one-row domain insert into one statement (InsertWithEvent), it is written exactly when
that row is, and takes its key's next sequence like any other."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import raw_connection, session_factory
from core.outbox import InsertWithEvent, NewEvent, enqueue, insert_with_event
from core.settings import Settings


def _event(settings: Settings, n: int) -> NewEvent:
    return NewEvent(settings.kafka.topics.user, "test.written", "agg", str(n), {"n": n})


@pytest.mark.parametrize("first_statement", [True, False], ids=["opens", "joins"])
async def test_the_row_commits_and_rolls_back_with_the_callers_transaction(
    settings: Settings, clean_db: AsyncEngine, first_statement: bool
) -> None:
    sessions = session_factory(clean_db)
    for n, commit in enumerate((False, True)):
        async with sessions() as session:
            if not first_statement:
                await session.execute(text("SELECT 1"))
            stored = await enqueue(session, _event(settings, n), shards=1)
            inside = await session.scalar(text("SELECT count(*) FROM outbox"))
            assert inside == 1, "the row is visible inside the caller's transaction"
            if commit:
                await session.commit()
            else:
                await session.rollback()
        async with clean_db.connect() as conn:
            ids = list(await conn.scalars(text("SELECT id FROM outbox")))
        assert ids == ([stored.outbox_id] if commit else []), (
            "the row must live and die with the caller's transaction, never commit alone"
        )


# The domain row of these tests: a user, whose columns have no defaults to draw on.
_USER = InsertWithEvent.of(
    "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
    domain_params=2,
)
_USER_IF_NEW = InsertWithEvent.of(
    "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x') "
    "ON CONFLICT DO NOTHING RETURNING id",
    domain_params=2,
)


async def _outbox(engine: AsyncEngine) -> list[tuple[str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT key, sequence, (payload->>'sequence')::int FROM outbox ORDER BY id")
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_insert_with_event_writes_both_rows_with_the_keys_next_sequence(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    sessions = session_factory(clean_db)
    async with sessions() as session:
        await enqueue(session, _event(settings, 7), shards=4)
        await session.commit()
    async with raw_connection(clean_db) as conn:
        row, stored = await insert_with_event(
            conn, _USER, ("ann", "ann@example.com"), _event(settings, 7), shards=4
        )
        assert not conn.is_in_transaction()
    async with clean_db.connect() as conn:
        user_id = (await conn.execute(text("SELECT id FROM users"))).scalar_one()
    assert row["id"] == user_id
    assert (stored.key, stored.sequence) == ("agg:7", 2)
    assert await _outbox(clean_db) == [("agg:7", 1, 1), ("agg:7", 2, 2)]


async def test_insert_with_event_writes_nothing_when_the_domain_insert_fails(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with raw_connection(clean_db) as conn:
        await insert_with_event(
            conn, _USER, ("ann", "a@example.com"), _event(settings, 1), shards=1
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await insert_with_event(
                conn, _USER, ("ann", "b@example.com"), _event(settings, 2), shards=1
            )
        with pytest.raises(RuntimeError, match="wrote no row"):
            await insert_with_event(
                conn, _USER_IF_NEW, ("ann", "c@example.com"), _event(settings, 3), shards=1
            )
        with pytest.raises(ValueError, match="takes 2 values, got 1"):
            await insert_with_event(conn, _USER, ("bob",), _event(settings, 4), shards=1)
    # Neither the failed insert nor the one that wrote no row left an event, or used
    # a sequence number its key's next event would skip.
    assert await _outbox(clean_db) == [("agg:1", 1, 1)]
    async with clean_db.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM outbox_key_sequences"))).scalars()
        assert list(keys) == ["agg:1"]


async def test_concurrent_inserts_with_event_on_one_key_follow_commit_order(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Invariant 2 for the one-statement writer: its sequence upsert waits on the
    key's row lock like enqueue's, and the outbox id is drawn after it, so 40 writers
    of one key racing on 40 connections end with sequences 1..40, none twice, in id
    order."""
    writers = 40
    connections = [await asyncpg.connect(settings.database.libpq_url) for _ in range(writers)]
    try:
        await asyncio.gather(
            *(
                insert_with_event(
                    conn, _USER, (f"u{n}", f"u{n}@example.com"), _event(settings, 0), shards=1
                )
                for n, conn in enumerate(connections)
            )
        )
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))
    rows = await _outbox(clean_db)
    assert [sequence for _, sequence, _ in rows] == list(range(1, writers + 1))
    assert all(payload_sequence == sequence for _, sequence, payload_sequence in rows)
