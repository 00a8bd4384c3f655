"""The outbox row of every event type the API emits: the Kafka value (envelope) and
headers of docs/architecture.md, with the original integration's fields kept."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.envelope import ENVELOPE_FIELDS, Envelope
from core.outbox import shard_of
from core.settings import Settings
from tests.support.api import PASSWORD, bearer, outbox_rows, register

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADER_NAMES = {
    "event_id",
    "event_type",
    "content-type",
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
}


async def _every_event(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """Drive one of each event through the API; returns what was created."""
    alice = await register(client, "alice", headers=headers)
    bob = await register(client, "bob", headers=headers)
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "alice@example.com", "password": PASSWORD},
        headers=headers,
    )
    alice_auth = {**headers, **bearer(login.json()["access_token"])}
    bob_login = await client.post(
        "/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    client.cookies.clear()
    bob_auth = {**headers, **bearer(bob_login.json()["access_token"])}
    project = (
        await client.post(
            "/api/v1/projects",
            json={"title": "Event platform", "description": "outbox"},
            headers=alice_auth,
        )
    ).json()
    application = (
        await client.post(
            f"/api/v1/projects/{project['id']}/applications",
            json={"cover_letter": "pick me"},
            headers=bob_auth,
        )
    ).json()
    message = (
        await client.post(
            "/api/v1/messages", json={"recipient_id": alice["id"], "body": "hi"}, headers=bob_auth
        )
    ).json()
    return {
        "alice": alice,
        "bob": bob,
        "project": project,
        "application": application,
        "message": message,
    }


def _check_common(row: Any, settings: Settings, traceparent: str | None) -> Envelope:
    payload, headers = row["payload"], row["headers"]
    assert set(payload) == set(ENVELOPE_FIELDS)
    envelope = Envelope.parse(json.dumps(payload))
    assert envelope.schema_version == 1
    assert envelope.event_id == row["event_id"]
    assert envelope.event_type == row["event_type"]
    assert envelope.sequence == row["sequence"] >= 1
    assert (envelope.aggregate_type, envelope.aggregate_id) == (
        row["aggregate_type"],
        row["aggregate_id"],
    )
    assert row["key"] == envelope.key
    assert row["shard"] == shard_of(row["key"], settings.relay.shards)
    assert payload["timestamp"].endswith("Z")
    assert abs(envelope.timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert isinstance(envelope.user_id, int)
    assert row["published_at"] is None

    expected = HEADER_NAMES | ({"traceparent"} if traceparent else set())
    assert set(headers) == expected
    assert headers["event_id"] == headers["ce_id"] == str(row["event_id"])
    assert headers["event_type"] == headers["ce_type"] == row["event_type"]
    assert headers["content-type"] == "application/json"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_source"] == f"/connectin/{row['aggregate_type']}"
    assert datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00")).tzinfo is not None
    assert headers.get("traceparent") == traceparent
    return envelope


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (TRACEPARENT, TRACEPARENT),
        (None, None),
        ("garbage", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # zero trace id
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # forbidden version
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", None),  # uppercase
    ],
    ids=["valid", "absent", "garbage", "zero-trace-id", "version-ff", "uppercase"],
)
async def test_every_event_type_has_the_full_envelope_and_headers(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    settings: Settings,
    sent: str | None,
    expected: str | None,
) -> None:
    headers = {"traceparent": sent} if sent else {}
    made = await _every_event(client, headers)
    alice, bob = made["alice"], made["bob"]
    project, application, message = made["project"], made["application"], made["message"]
    topics = settings.kafka.topics
    rows = {(r["event_type"], r["user_id"]): r for r in await _rows_with_user(clean_db)}

    def check(event_type: str, user: int, tp: str | None = expected) -> tuple[Any, Envelope]:
        row = rows[(event_type, user)]
        return row, _check_common(row, settings, tp)

    row, env = check("user.registered", alice["id"])
    assert row["topic"] == topics.user and row["key"] == f"user:{alice['id']}"
    assert env.data == {"user_id": alice["id"], "username": "alice", "email": "alice@example.com"}

    row, env = check("user.login", alice["id"])
    assert row["topic"] == topics.user and row["key"] == f"user:{alice['id']}"
    assert env.data["user_id"] == alice["id"]
    assert row["sequence"] == 2  # after user.registered on the same key
    check("user.login", bob["id"], None)  # bob logged in without the header

    row, env = check("project.created", alice["id"])
    assert row["topic"] == topics.project and row["key"] == f"project:{project['id']}"
    assert env.data == {
        "project_id": project["id"],
        "owner_id": alice["id"],
        "title": "Event platform",
    }

    row, env = check("project.applied", bob["id"])
    assert row["topic"] == topics.project and row["key"] == f"project:{project['id']}"
    assert row["sequence"] == 2
    assert env.data == {
        "application_id": application["id"],
        "project_id": project["id"],
        "project_title": "Event platform",
        "owner_id": alice["id"],
        "applicant_id": bob["id"],
    }

    row, env = check("message.sent", bob["id"])
    low, high = sorted((alice["id"], bob["id"]))
    assert row["topic"] == topics.message and row["key"] == f"message:{low}-{high}"
    assert env.data == {
        "message_id": message["id"],
        "conversation_id": f"{low}-{high}",
        "sender_id": bob["id"],
        "recipient_id": alice["id"],
        "preview": "hi",
    }
    assert len(rows) == 7


async def _rows_with_user(engine: AsyncEngine) -> list[dict[str, Any]]:
    return [{**r, "user_id": r["payload"]["user_id"]} for r in await outbox_rows(engine)]


async def test_event_ids_are_unique_uuids(client: httpx.AsyncClient, clean_db: AsyncEngine) -> None:
    for _ in range(3):
        await register(client)
    rows = await outbox_rows(clean_db)
    ids = [r["payload"]["event_id"] for r in rows]
    assert len(set(ids)) == 3
    assert all(uuid.UUID(i).version == 4 for i in ids)


async def test_message_replies_share_the_conversation_key(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    a, b = await register(client), await register(client)
    tokens = {}
    for user in (a, b):
        login = await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        tokens[user["id"]] = login.json()["access_token"]
    client.cookies.clear()
    for sender, recipient in ((a, b), (b, a), (a, b)):
        response = await client.post(
            "/api/v1/messages",
            json={"recipient_id": recipient["id"], "body": "ping"},
            headers=bearer(tokens[sender["id"]]),
        )
        assert response.status_code == 201
    rows = await outbox_rows(clean_db, "message.sent")
    assert len({r["key"] for r in rows}) == 1
    assert [r["sequence"] for r in rows] == [1, 2, 3]
