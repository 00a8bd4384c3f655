"""The relay killed with SIGKILL again and again, while writers keep committing events
for overlapping keys. What must hold afterwards, checked against the real topics and
tables: every outbox event is in Kafka exactly once (read_committed), the published
set equals the outbox set, and per key the sequences arrive 1, 2, 3, ... in order.

Each iteration kills the relay at a different kind of moment: at a random time, or on
purpose (failpoints) before produce, mid-batch, after the Kafka commit but before the
Postgres mark, after a batch's commit while the previous batch's mark is still running
(the overlap: two committed batches unmarked), and while recovering from the
checkpoint. CONNECTIN_CRASH_ITERATIONS
sets the count (default 20; CI-friendly), e.g. 200 for a long run. Every random choice
(when to kill, and each failpoint's draws) comes from one seed, printed at the start
and in every failure message; CONNECTIN_CRASH_SEED=<seed> replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.kafka import (
    assert_exactly_once_in_order,
    isolate,
    read_committed,
    wait_all_published,
    writing,
)
from tests.support.processes import Process, settings_env

ITERATIONS = int(os.environ.get("CONNECTIN_CRASH_ITERATIONS", "20"))
SEED = int(os.environ.get("CONNECTIN_CRASH_SEED") or random.SystemRandom().randrange(2**31))
MODES = (
    "random",
    "before_produce",
    "mid_batch",
    "after_commit",
    "mark_overlap",
    "during_recovery",
    "random",
)
FAILPOINT_PROBABILITY = {
    "before_produce": "0.05",
    "mid_batch": "0.05",
    "after_commit": "0.1",
    "mark_overlap": "0.2",
    "during_recovery": "0.5",
}

# A mark of 40 rows takes about a millisecond, so the next batch's commit rarely finds
# it still running. In the overlap mode every UPDATE of the outbox first sleeps, so
# the failpoint fires with a mark really open; and Postgres checks the client socket
# during it (client_connection_check_interval), so the mark of a killed relay is
# rolled back rather than finishing on its own: only the checkpoint can mark its rows.
SLOW_MARKS = (
    """
CREATE FUNCTION slow_marks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(0.2);
    RETURN NULL;
END $$""",
    "CREATE TRIGGER slow_marks BEFORE UPDATE ON outbox "
    "FOR EACH STATEMENT EXECUTE FUNCTION slow_marks()",
    "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET client_connection_check_interval = 10',"
    " current_database()); END $$",
)
FAST_MARKS = (
    "DROP TRIGGER IF EXISTS slow_marks ON outbox",
    "DROP FUNCTION IF EXISTS slow_marks()",
    "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET client_connection_check_interval',"
    " current_database()); END $$",
)


async def run_sql(engine: AsyncEngine, statements: tuple[str, ...]) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


@asynccontextmanager
async def slow_marks(engine: AsyncEngine, on: bool) -> AsyncIterator[None]:
    if not on:
        yield
        return
    await run_sql(engine, SLOW_MARKS)
    try:
        yield
    finally:
        await run_sql(engine, FAST_MARKS)


def recoveries(process: Process) -> list[dict[str, object]]:
    """The relay's "checkpoint recovered" log lines."""
    lines = []
    for raw in process.log_path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if line.get("event") == "checkpoint recovered":
            lines.append(line)
    return lines


async def wait_dead(process: Process, timeout_s: float) -> bool:
    for _ in range(int(timeout_s * 20)):
        if not process.alive():
            return True
        await asyncio.sleep(0.05)
    return False


def crash_settings(settings: Settings) -> Settings:
    s = isolate(settings, "crash")
    # Small batches: many transactions, so many windows to die in.
    return replace(s, relay=replace(s.relay, batch_size=40, lock_check_ms=200))


async def test_relay_kill_9_loop_loses_and_repeats_nothing(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    print(f"crash seed {SEED}: CONNECTIN_CRASH_SEED={SEED} replays these kill points")
    rng = random.Random(SEED)
    s = crash_settings(settings)
    self_killed = 0
    relays: list[Process] = []
    async with writing(clean_db, s) as ids:
        for i in range(ITERATIONS):
            mode = MODES[i % len(MODES)]
            extra = {}
            if mode != "random":
                probability = FAILPOINT_PROBABILITY[mode]
                extra["RELAY_FAILPOINT"] = f"{mode}:{probability}:SIGKILL:{rng.randrange(2**31)}"
            async with slow_marks(clean_db, mode == "mark_overlap"):
                relay = Process("relay", settings_env(s, **extra))
                relays.append(relay)
                if mode == "random":
                    await asyncio.sleep(rng.uniform(0.5, 2.5))
                elif await wait_dead(relay, 8):
                    self_killed += relay.popen.returncode == -9
                    continue
                relay.kill()

    final = Process("relay", settings_env(s))
    try:
        await wait_all_published(clean_db, timeout_s=90)
    finally:
        code = final.terminate()
    seed = f"(crash seed {SEED})"
    assert code == 0, f"{seed}\n{final.log_tail()}"
    assert "relay stopped" in final.log_path.read_text(), seed

    published = await asyncio.to_thread(read_committed, s, list(s.kafka.topics.event_topics))
    assert len(ids) > 500, seed
    try:
        assert_exactly_once_in_order(published, set(ids))
    except AssertionError as exc:
        raise AssertionError(f"{seed} {exc}") from None

    async with clean_db.connect() as conn:
        recovered = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM outbox WHERE receipt ? 'recovered_from_checkpoint'"
            )
        ).scalar_one()
        outbox_ids = {str(r[0]) for r in await conn.exec_driver_sql("SELECT event_id FROM outbox")}
    assert outbox_ids == set(ids), seed
    # The failpoints really fired, and crashes after the Kafka commit really left rows
    # that only the checkpoint could mark: the test exercised the dangerous window.
    assert self_killed >= ITERATIONS // 3, seed
    assert recovered > 0, seed
    # And the overlap window was hit: some recovery marked rows of an earlier batch
    # that only the later batch's checkpoint still named.
    lines = [line for relay in [*relays, final] for line in recoveries(relay)]
    assert sum(int(str(line["marked_earlier"])) for line in lines) > 0, (seed, lines)
