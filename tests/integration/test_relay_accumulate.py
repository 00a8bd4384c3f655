"""RELAY_ACCUMULATE_MS: under a steady flow the relay publishes batches, not a Kafka
transaction per event (each costs the broker a marker on every partition it touches)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.kafka import isolate, wait_all_published, write_events
from tests.support.relay import running_relay

EVENTS = 120
GAP_S = 0.005


async def batch_sizes(engine: AsyncEngine, event_ids: list[str]) -> list[int]:
    """Events per Kafka transaction: a batch is marked by one statement, so its rows
    share that statement's now() as published_at, and no two batches do."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT count(*) FROM outbox WHERE event_id = ANY(CAST(:ids AS uuid[]))"
                " GROUP BY published_at ORDER BY min(id)"
            ),
            {"ids": event_ids},
        )
        return [int(n) for (n,) in rows]


async def test_a_steady_flow_is_published_in_batches_every_event_once(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """120 events, one per transaction ~5 ms apart, with a 100 ms bound: every event is
    published once, in transactions of at least 4 events on average (about 20 is what
    the rate promises; a control with RELAY_ACCUMULATE_MS=0, tried by hand, put most
    events in a transaction of their own)."""
    s = isolate(settings, "accumulate")
    s = replace(s, relay=replace(s.relay, shards=1, accumulate_ms=100))
    event_ids: list[str] = []
    async with running_relay(s, clean_db):
        # Once the shard is led and its producer ready, so no write piles up behind
        # the relay's start-up.
        await write_events(clean_db, s, 1, keys=10)
        await wait_all_published(clean_db)
        for _ in range(EVENTS):
            event_ids += await write_events(clean_db, s, 1, keys=10)
            await asyncio.sleep(GAP_S)
        await wait_all_published(clean_db)
    sizes = await batch_sizes(clean_db, event_ids)
    assert sum(sizes) == EVENTS, sizes
    assert len(sizes) <= EVENTS / 4, sizes
