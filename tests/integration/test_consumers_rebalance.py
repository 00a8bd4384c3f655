"""Rebalances under a steady stream: a second member joins the group, then the first
one leaves. Each member commits what it has done when partitions are revoked, so the
next owner starts right after it: no event is handled twice, none is lost."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.registry import HandlerContext, HandlerGroup, Registry
from consumers.service import ConsumerService
from core.lifecycle import StopSignal
from core.settings import Settings
from tests.support.consumers import (
    TxProducer,
    consumer_settings,
    ensure_event_topics,
    envelope_record,
    metric,
    scalar,
    wait_until,
)


def member(name: str, seen: list[tuple[str, uuid.UUID]]) -> Registry:
    group = HandlerGroup(consumer="rebalance", topic="user")

    @group.on("user.registered")
    async def record(ctx: HandlerContext) -> None:
        seen.append((name, ctx.event.event_id))

    return Registry([group])


async def test_members_joining_and_leaving_hand_over_without_duplicates(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "rebal")
    ensure_event_topics(s)
    produced: list[str] = []
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:
        producer = TxProducer(s, "rebalance-feeder")
        n = 0
        while feeding.is_set():
            batch = [
                envelope_record(
                    s.kafka.topics.user, "user.registered", ("user", n + i), 1, {}, user_id=n + i
                )
                for i in range(5)
            ]
            n += 5
            producer.send(batch)
            produced.extend(str(r.event_id) for r in batch)
            time.sleep(0.05)

    seen: list[tuple[str, uuid.UUID]] = []
    duplicates_before = metric("connectin_consumer_duplicates_skipped_total", consumer="rebalance")
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    stop_a, stop_b = StopSignal(), StopSignal()
    a = asyncio.create_task(ConsumerService(s, clean_db, stop_a, member("a", seen)).run())
    await asyncio.sleep(1.5)
    b = asyncio.create_task(ConsumerService(s, clean_db, stop_b, member("b", seen)).run())

    async def b_working() -> bool:
        return any(name == "b" for name, _ in seen[-20:])

    await wait_until(b_working, what="the second member got partitions")
    await asyncio.sleep(1.0)
    stop_a.stop("member a leaves")
    assert await a == 0
    await asyncio.sleep(1.5)
    feeding.clear()
    await asyncio.to_thread(feeder.join, 10)

    async def all_done() -> bool:
        return bool(
            await scalar(
                clean_db, "SELECT count(*) FROM processed_events WHERE consumer = 'rebalance'"
            )
            == len(produced)
        )

    await wait_until(all_done, what=f"{len(produced)} events handled")
    stop_b.stop("test over")
    assert await b == 0

    handled = [str(event_id) for _, event_id in seen]
    assert sorted(handled) == sorted(produced)  # each once, none missing
    by_member = {name: sum(1 for n, _ in seen if n == name) for name in ("a", "b")}
    assert by_member["a"] > 0 and by_member["b"] > 0, by_member
    assert (
        metric("connectin_consumer_duplicates_skipped_total", consumer="rebalance")
        == duplicates_before
    )
