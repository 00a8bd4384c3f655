"""The outbox writer's row belongs to the caller's transaction, whether the writer's
statement opens that transaction or joins one an earlier statement opened: it is
visible inside it and commits or rolls back with it, never alone."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import session_factory
from core.outbox import NewEvent, enqueue
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
