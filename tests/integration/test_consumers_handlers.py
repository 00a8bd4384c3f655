"""Each handler's effect, through real Kafka and Postgres: records produced the way the
relay produces them, the consumers service running in-process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.consumers import (
    consumer_settings,
    create_users,
    ensure_event_topics,
    envelope_record,
    produce,
    rows,
    running_consumers,
    scalar,
    wait_until,
)


async def test_handlers_apply_their_effects(settings: Settings, clean_db: AsyncEngine) -> None:
    s = consumer_settings(settings, "handlers")
    t = s.kafka.topics
    alice, bob = await create_users(clean_db, 2, "handlers")
    async with clean_db.begin() as conn:
        project_id = (
            await conn.exec_driver_sql(
                "INSERT INTO projects (owner_id, title, description) "
                f"VALUES ({alice}, 'Rocket', 'go up') RETURNING id"
            )
        ).scalar_one()
    later = datetime(2030, 1, 2, tzinfo=UTC)
    records = [
        envelope_record(
            t.user, "user.registered", ("user", bob), 1, {"username": "bob"}, user_id=bob
        ),
        # Logins arrive out of time order: the later one must stay.
        envelope_record(t.user, "user.login", ("user", bob), 2, {}, user_id=bob, timestamp=later),
        envelope_record(
            t.user,
            "user.login",
            ("user", bob),
            3,
            {},
            user_id=bob,
            timestamp=later - timedelta(days=1),
        ),
        envelope_record(
            t.project,
            "project.created",
            ("project", project_id),
            1,
            {"project_id": project_id, "owner_id": alice},
            user_id=alice,
        ),
        # One application names the owner, the other leaves it to a lookup.
        envelope_record(
            t.project,
            "project.applied",
            ("project", project_id),
            2,
            {"project_id": project_id, "owner_id": alice, "project_title": "Rocket"},
            user_id=bob,
        ),
        envelope_record(
            t.project,
            "project.applied",
            ("project", project_id),
            3,
            {"project_id": project_id, "application_id": 7},
            user_id=bob,
        ),
        envelope_record(
            t.message,
            "message.sent",
            ("message", 1),
            1,
            {"message_id": 1, "sender_id": alice, "recipient_id": bob},
            user_id=alice,
        ),
        envelope_record(
            t.message,
            "message.sent",
            ("message", 2),
            1,
            {"message_id": 2, "sender_id": alice, "recipient_id": bob},
            user_id=alice,
        ),
    ]
    ensure_event_topics(s)
    await produce(s, records)

    async def all_processed() -> bool:
        return bool(await scalar(clean_db, "SELECT count(*) FROM processed_events") == 8)

    async with running_consumers(s, clean_db):
        await wait_until(all_processed, what="8 events processed")

    notes = await rows(
        clean_db,
        "SELECT user_id, kind, title, data, source_event_id::text FROM notifications ORDER BY id",
    )
    by_kind: dict[str, list[Any]] = {}
    for n in notes:
        by_kind.setdefault(n.kind, []).append(n)
    assert [n.user_id for n in by_kind["welcome"]] == [bob]
    assert [n.user_id for n in by_kind["project.application"]] == [alice, alice]
    assert all("Rocket" in n.title for n in by_kind["project.application"])
    assert [n.user_id for n in by_kind["message.received"]] == [bob, bob]
    assert {n.source_event_id for n in notes} == {
        r.event_id
        for r in records
        if r.value and b'"project.created"' not in r.value and b'"user.login"' not in r.value
    }
    users = {
        r.id: r
        for r in await rows(
            clean_db, "SELECT id, last_login_at, projects_count, unread_messages FROM users"
        )
    }
    assert users[bob].last_login_at == later
    assert users[bob].unread_messages == 2
    assert users[alice].projects_count == 1
    assert users[alice].unread_messages == 0
