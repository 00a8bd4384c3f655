"""Leadership: shards split between relays, a dead relay's shards move to the living
one, a relay whose lease connection dies stops at once and comes back, and nothing is
lost or repeated through any of it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.leadership import relay_application_name
from core.outbox import NewEvent, enqueue
from core.settings import Settings
from tests.support.kafka import (
    assert_events_exactly_once,
    isolate,
    read_committed,
    shards_by_pid,
    wait_all_published,
    write_events,
    writing,
)
from tests.support.processes import Process, settings_env


async def until(engine: AsyncEngine, s: Settings, want: list[int], timeout_s: float) -> list[int]:
    """Wait until the relays' shard counts (sorted) equal `want`."""
    deadline = time.monotonic() + timeout_s
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen = sorted((await shards_by_pid(engine, s)).values())
        if seen == want:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"shard split {seen}, wanted {want}")


def fast(settings: Settings, tag: str) -> Settings:
    s = isolate(settings, tag)
    return replace(s, relay=replace(s.relay, batch_size=50, lock_check_ms=200))


async def test_two_relays_split_shards_and_survive_one_dying(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = fast(settings, "pair")
    first = Process("relay", settings_env(s))
    second = Process("relay", settings_env(s))
    async with writing(clean_db, s) as ids:
        await until(clean_db, s, [2, 2], 20)
        await asyncio.sleep(1)
        first.kill()
        # The survivor takes the dead relay's shards within a few seconds.
        await until(clean_db, s, [4], 10)
        await asyncio.sleep(1)
    try:
        await wait_all_published(clean_db)
    finally:
        assert second.terminate() == 0, second.log_tail()
    await assert_events_exactly_once(s, set(ids))


async def test_lost_lease_connection_stops_and_recovers(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = fast(settings, "lease")
    relay = Process("relay", settings_env(s))
    async with writing(clean_db, s) as ids:
        await until(clean_db, s, [4], 20)
        for _ in range(3):
            # Kill the relay's lease session from the server side: the locks vanish.
            async with clean_db.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :app"
                    ),
                    {"app": relay_application_name(s.kafka.transactional_id_prefix)},
                )
            await asyncio.sleep(0.5)
            await until(clean_db, s, [4], 15)
    try:
        await wait_all_published(clean_db)
    finally:
        assert relay.terminate() == 0, relay.log_tail()
    assert "lease connection lost" in relay.log_path.read_text()
    await assert_events_exactly_once(s, set(ids))


async def test_late_committing_transaction_is_still_published(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """T1 takes an id, T2 takes a higher one and commits, the relay publishes T2, then
    T1 commits: an id cursor would skip T1 for ever; selection by status does not."""
    s = fast(settings, "late")
    sessions = async_sessionmaker(clean_db)
    topic = s.kafka.topics.user
    relay = Process("relay", settings_env(s, RELAY_SHARDS="1"))
    s = replace(s, relay=replace(s.relay, shards=1))
    try:
        async with sessions() as slow:
            early = NewEvent(topic, "test.slow", "agg", "slow", {})
            stored_early = await enqueue(slow, early, shards=1)
            late_ids = await write_events(clean_db, s, 5, keys=3)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with clean_db.connect() as conn:
                    done = (
                        await conn.exec_driver_sql(
                            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
                        )
                    ).scalar_one()
                if done == 5:
                    break
                await asyncio.sleep(0.05)
            assert done == 5
            await slow.commit()
        await wait_all_published(clean_db)
    finally:
        assert relay.terminate() == 0, relay.log_tail()
    async with clean_db.connect() as conn:
        max_late = (
            await conn.exec_driver_sql("SELECT max(id) FROM outbox WHERE event_type <> 'test.slow'")
        ).scalar_one()
    assert stored_early.outbox_id < max_late
    published = await asyncio.to_thread(read_committed, s, list(s.kafka.topics.event_topics))
    got = {p.envelope["event_id"] for p in published}
    assert str(early.event_id) in got
    assert set(late_ids) <= got
