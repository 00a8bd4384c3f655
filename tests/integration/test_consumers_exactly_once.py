"""Exactly-once effects: duplicates of an event (same event id, from any producer)
have their effect once; a consumer group started late reads from the beginning and
commits its offsets only for what it applied."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.handlers import users
from consumers.registry import HandlerContext, HandlerGroup, Registry
from core.kafka import group_id
from core.outbox import NewEvent
from core.settings import Settings
from tests.support.consumers import (
    committed_offsets,
    consumer_settings,
    create_users,
    end_offsets,
    ensure_event_topics,
    envelope_record,
    metric,
    produce,
    rows,
    running_consumers,
    scalar,
    wait_until,
)


async def test_same_event_five_times_has_its_effect_once(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "dup")
    t = s.kafka.topics
    (user,) = await create_users(clean_db, 1, "dup")
    registered = envelope_record(t.user, "user.registered", ("user", user), 1, {}, user_id=user)
    login = envelope_record(t.user, "user.login", ("user", user), 2, {}, user_id=user)
    ensure_event_topics(s)
    duplicates_before = metric("connectin_consumer_duplicates_skipped_total", consumer="users")
    anomalies_before = sum(
        metric("connectin_consumer_sequence_anomalies_total", consumer="users", kind=k)
        for k in ("gap", "regression", "late_start")
    )
    # Two copies in one transaction, one more in a second, two from another producer
    # (another transactional id), then the next event of the key.
    await produce(s, [registered, registered], name="a")
    await produce(s, [registered], name="a")
    await produce(s, [registered, registered], name="b")
    await produce(s, [login], name="b")

    async def both_done() -> bool:
        done = await scalar(
            clean_db,
            "SELECT count(*) FROM processed_events WHERE event_id IN (:a, :b)",
            a=registered.event_id,
            b=login.event_id,
        )
        skipped = metric("connectin_consumer_duplicates_skipped_total", consumer="users")
        return bool(done == 2 and skipped - duplicates_before == 4)

    async with running_consumers(s, clean_db):
        await wait_until(both_done, what="both events processed, 4 duplicates skipped")

    assert (
        await scalar(
            clean_db,
            "SELECT count(*) FROM notifications WHERE source_event_id = :e",
            e=registered.event_id,
        )
        == 1
    )
    assert await scalar(clean_db, "SELECT count(*) FROM notifications") == 1
    anomalies = sum(
        metric("connectin_consumer_sequence_anomalies_total", consumer="users", kind=k)
        for k in ("gap", "regression", "late_start")
    )
    assert anomalies == anomalies_before


async def test_group_started_late_catches_up_from_the_beginning(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "late")
    t = s.kafka.topics
    ids = await create_users(clean_db, 20, "late")
    records = [
        envelope_record(t.user, "user.registered", ("user", u), 1, {}, user_id=u) for u in ids
    ]
    ensure_event_topics(s)
    await produce(s, records[:10])
    await produce(s, records[10:])

    async def all_welcomed() -> bool:
        return bool(await scalar(clean_db, "SELECT count(*) FROM notifications") == 20)

    async with running_consumers(s, clean_db):
        await wait_until(all_welcomed, what="20 welcome notifications")

    # Offsets were committed for everything applied (on the way out at the latest).
    group = group_id(s.kafka, "users")
    assert committed_offsets(s, group, t.user) == end_offsets(s, t.user)

    # A brand-new consumer group on the same topic, started after all that, reads the
    # topic from the beginning too.
    seen: list[uuid.UUID] = []
    audit = HandlerGroup(consumer="audit", topic="user")

    @audit.on("user.registered")
    async def remember(ctx: HandlerContext) -> None:
        seen.append(ctx.event.event_id)

    async def audited() -> bool:
        return len(seen) == 20

    async with running_consumers(s, clean_db, Registry([audit, users.handlers])):
        await wait_until(audited, what="the late group saw all 20 events")
    assert sorted(map(str, seen)) == sorted(str(r.event_id) for r in records)
    # The first group had nothing left to do.
    assert await scalar(clean_db, "SELECT count(*) FROM notifications") == 20
    assert (
        await scalar(clean_db, "SELECT count(*) FROM processed_events WHERE consumer = 'audit'")
        == 20
    )


async def test_follow_up_events_commit_with_the_effects(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A handler's follow-up event goes through the outbox in the same transaction:
    once per event however often the event is delivered, carrying its trace."""
    s = consumer_settings(settings, "follow")
    follow = HandlerGroup(consumer="follow", topic="user")

    @follow.on("user.registered")
    async def greet(ctx: HandlerContext) -> None:
        await ctx.emit(
            NewEvent(
                topic=ctx.settings.kafka.topics.message,
                event_type="message.sent",
                aggregate_type="greeting",
                aggregate_id=str(ctx.event.user_id),
                data={"in_reply_to": str(ctx.event.event_id)},
            )
        )

    trace = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    record = envelope_record(
        s.kafka.topics.user, "user.registered", ("user", 1), 1, {}, user_id=1, traceparent=trace
    )
    ensure_event_topics(s)
    await produce(s, [record, record, record])

    before = metric("connectin_consumer_duplicates_skipped_total", consumer="follow")

    async def emitted() -> bool:
        skipped = metric("connectin_consumer_duplicates_skipped_total", consumer="follow")
        return bool(
            await scalar(clean_db, "SELECT count(*) FROM outbox") == 1 and skipped - before >= 2
        )

    async with running_consumers(s, clean_db, Registry([follow])):
        await wait_until(emitted, what="one follow-up event, two duplicates skipped")
    (row,) = await rows(clean_db, "SELECT payload, headers FROM outbox")
    assert row.payload["data"] == {"in_reply_to": record.event_id}
    assert row.headers["traceparent"] == trace
