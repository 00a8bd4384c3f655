"""A permanent database error parks its shard (one error line, no retry loop) while
the other shards keep publishing; once the cause is fixed a restarted relay resumes
it, and nothing is lost or repeated."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox import shard_of
from core.settings import Settings
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    wait_all_published,
    write_events,
)
from tests.support.processes import Process, settings_env

REFUSE = (
    """
CREATE FUNCTION refuse_marks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.shard = {shard} AND NEW.published_at IS NOT NULL THEN
        RAISE EXCEPTION 'marks of shard % refused by the test', NEW.shard
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER refuse_marks BEFORE UPDATE ON outbox "
    "FOR EACH ROW EXECUTE FUNCTION refuse_marks()",
)
ALLOW = ("DROP TRIGGER IF EXISTS refuse_marks ON outbox", "DROP FUNCTION IF EXISTS refuse_marks()")


async def run_sql(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


def log_lines(process: Process) -> list[dict[str, Any]]:
    lines = []
    for raw in process.log_path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


async def pending_by_shard(engine: AsyncEngine) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT shard, count(*) FROM outbox WHERE published_at IS NULL GROUP BY shard")
        )
        return {int(shard): int(n) for shard, n in rows}


async def test_permanent_error_parks_only_its_shard(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = isolate(settings, "parked")
    s = replace(s, relay=replace(s.relay, batch_size=50, lock_check_ms=200))
    blocked = shard_of("agg:0", s.relay.shards)
    ids = await write_events(clean_db, s, 400, keys=20, per_transaction=4)
    await run_sql(clean_db, *ALLOW, REFUSE[0].format(shard=blocked), REFUSE[1])
    relay = Process("relay", settings_env(s))
    try:
        deadline = time.monotonic() + 60
        while True:
            pending = await pending_by_shard(clean_db)
            parked = [
                line
                for line in log_lines(relay)
                if line.get("event") == "shard parked until the relay restarts"
            ]
            if parked and set(pending) == {blocked}:
                break
            assert time.monotonic() < deadline, (pending, relay.log_tail())
            await asyncio.sleep(0.1)
        assert relay.alive(), relay.log_tail()
        lines = log_lines(relay)
        errors = [
            line for line in lines if line.get("event") == "permanent database error, parking shard"
        ]
        assert len(errors) == 1, relay.log_tail()
        assert errors[0]["shard"] == blocked and errors[0]["sqlstate"] == "23514"
        retried = [
            line
            for line in lines
            if line.get("event") == "database call failed, retrying"
            and line.get("shard") == blocked
        ]
        assert not retried, "a permanent error must not be retried"
        # Parked, not spinning: still one error line a few lock checks later, and the
        # lease is kept so no other relay takes the shard into the same error.
        await asyncio.sleep(1)
        assert len([x for x in log_lines(relay) if x.get("event") == errors[0]["event"]]) == 1
        assert (await pending_by_shard(clean_db)).get(blocked, 0) > 0
    finally:
        await run_sql(clean_db, *ALLOW)
        assert relay.terminate() == 0, relay.log_tail()
    resumed = Process("relay", settings_env(s))
    try:
        await wait_all_published(clean_db)
    finally:
        assert resumed.terminate() == 0, resumed.log_tail()
    await assert_events_exactly_once(s, set(ids))
