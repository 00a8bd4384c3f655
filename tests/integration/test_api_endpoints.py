"""The endpoints' happy paths and the operational surface: health, readiness,
OpenAPI, metrics and CORS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.api import PASSWORD, api_client, bearer, user_with_token


async def _users(client: httpx.AsyncClient, n: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    out = []
    for _ in range(n):
        user, token = await user_with_token(client)
        out.append((user, bearer(token)))
    return out


async def test_me_returns_the_caller(client: httpx.AsyncClient) -> None:
    (user, auth), _ = await _users(client, 2)
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    assert me["id"] == user["id"] and me["email"] == user["email"]
    assert {"created_at", "projects_count", "unread_messages", "last_login_at"} <= set(me)
    assert "password_hash" not in me


async def test_projects_and_applications(client: httpx.AsyncClient) -> None:
    (owner, owner_auth), (bob, bob_auth), (carol, carol_auth) = await _users(client, 3)
    created = await client.post(
        "/api/v1/projects", json={"title": "  Kafka  ", "description": "x"}, headers=owner_auth
    )
    assert created.status_code == 201
    project = created.json()
    assert project["title"] == "Kafka" and project["owner_id"] == owner["id"]
    second = (
        await client.post("/api/v1/projects", json={"title": "Second"}, headers=bob_auth)
    ).json()

    listed = (await client.get("/api/v1/projects", headers=carol_auth)).json()
    assert [p["id"] for p in listed] == [second["id"], project["id"]]
    page = (await client.get("/api/v1/projects?limit=1&offset=1", headers=carol_auth)).json()
    assert [p["id"] for p in page] == [project["id"]]
    fetched = await client.get(f"/api/v1/projects/{project['id']}", headers=carol_auth)
    assert fetched.json() == project

    path = f"/api/v1/projects/{project['id']}/applications"
    for auth in (bob_auth, carol_auth):
        applied = await client.post(path, json={"cover_letter": "hello"}, headers=auth)
        assert applied.status_code == 201
    no_letter = await client.post(
        f"/api/v1/projects/{second['id']}/applications", headers=carol_auth, json={}
    )
    assert no_letter.status_code == 201 and no_letter.json()["cover_letter"] == ""

    seen = (await client.get(path, headers=owner_auth)).json()
    assert [a["applicant_id"] for a in seen] == [bob["id"], carol["id"]]
    assert (await client.get(path, headers=bob_auth)).status_code == 403


async def test_messages_are_visible_to_sender_and_recipient_only(
    client: httpx.AsyncClient,
) -> None:
    (a, a_auth), (b, b_auth), (c, c_auth) = await _users(client, 3)
    sent = await client.post(
        "/api/v1/messages", json={"recipient_id": b["id"], "body": "hi b"}, headers=a_auth
    )
    assert sent.status_code == 201
    assert sent.json()["sender_id"] == a["id"] and sent.json()["recipient_id"] == b["id"]
    await client.post(
        "/api/v1/messages", json={"recipient_id": a["id"], "body": "hi a"}, headers=b_auth
    )
    await client.post(
        "/api/v1/messages", json={"recipient_id": c["id"], "body": "hi c"}, headers=a_auth
    )

    def bodies(response: httpx.Response) -> list[str]:
        return [m["body"] for m in response.json()]

    assert bodies(await client.get("/api/v1/messages", headers=a_auth)) == [
        "hi c",
        "hi a",
        "hi b",
    ]
    assert bodies(await client.get("/api/v1/messages", headers=b_auth)) == ["hi a", "hi b"]
    assert bodies(await client.get("/api/v1/messages", headers=c_auth)) == ["hi c"]
    only_b = await client.get(f"/api/v1/messages?with_user={b['id']}", headers=a_auth)
    assert bodies(only_b) == ["hi a", "hi b"]


async def test_notifications_list_and_mark_read(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    (a, a_auth), (b, b_auth) = await _users(client, 2)
    async with clean_db.begin() as conn:
        ids = [
            (
                await conn.execute(
                    text(
                        "INSERT INTO notifications (user_id, kind, title, data) "
                        "VALUES (:u, 'k', :t, CAST(:d AS jsonb)) RETURNING id"
                    ),
                    {"u": user, "t": title, "d": '{"n": 1}'},
                )
            ).scalar_one()
            for user, title in (
                (a["id"], "one"),
                (a["id"], "two"),
                (a["id"], "three"),
                (b["id"], "b"),
            )
        ]
    listed = (await client.get("/api/v1/notifications", headers=a_auth)).json()
    assert listed["unread_count"] == 3
    assert [n["title"] for n in listed["items"]] == ["three", "two", "one"]
    assert listed["items"][0]["data"] == {"n": 1} and listed["items"][0]["read_at"] is None

    read = await client.post(f"/api/v1/notifications/{ids[0]}/read", headers=a_auth)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = await client.post(f"/api/v1/notifications/{ids[0]}/read", headers=a_auth)
    assert again.json()["read_at"] == read.json()["read_at"]  # idempotent
    unread = (await client.get("/api/v1/notifications?unread_only=true", headers=a_auth)).json()
    assert unread["unread_count"] == 2 and len(unread["items"]) == 2

    assert (
        await client.post(f"/api/v1/notifications/{ids[3]}/read", headers=a_auth)
    ).status_code == 404
    everything = await client.post("/api/v1/notifications/read-all", headers=a_auth)
    assert everything.json() == {"marked": 2, "unread_count": 0}
    others = (await client.get("/api/v1/notifications", headers=b_auth)).json()
    assert others["unread_count"] == 1  # b's notification untouched


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_ready_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    dead = replace(
        settings,
        database=replace(
            settings.database, url="postgresql+asyncpg://connectin:connectin@127.0.0.1:1/none"
        ),
    )
    async with api_client(dead) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"] == "unavailable"
        # A request that needs the database is a 503 too, not a 500.
        register = await client.post(
            "/api/v1/auth/register",
            json={"username": "x_y_z", "email": "x@example.com", "password": PASSWORD},
        )
        assert register.status_code == 503, register.text


async def test_openapi_schema_lists_the_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/projects/{project_id}/applications",
        "/api/v1/messages",
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}/read",
        "/api/v1/notifications/read-all",
        "/health",
        "/ready",
    ):
        assert path in schema["paths"], path
    assert "BearerToken" in schema["components"]["securitySchemes"]


async def test_metrics_count_requests_by_method_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    (_, auth), _ = await _users(client, 2)
    await client.get("/api/v1/projects/987654", headers=auth)
    await client.get("/api/v1/users/me")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    metrics = response.text
    assert (
        'connectin_api_http_requests_total{method="GET",'
        'route="/api/v1/projects/{project_id}",status="404"} 1.0'
    ) in metrics
    assert (
        'connectin_api_http_requests_total{method="GET",route="/api/v1/users/me",status="401"} 1.0'
    ) in metrics
    assert 'connectin_api_http_requests_total{method="POST",route="/api/v1/auth/register",' in (
        metrics
    )
    assert "connectin_api_http_request_duration_seconds_bucket{" in metrics


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://app.example.com", True), ("http://evil.example.com", False)],
)
async def test_cors_allows_only_configured_origins(
    settings: Settings, origin: str, allowed: bool
) -> None:
    configured = replace(
        settings, api=replace(settings.api, cors_origins=("http://app.example.com",))
    )
    async with api_client(configured) as client:
        preflight = await client.options(
            "/api/v1/projects",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        simple = await client.get("/health", headers={"Origin": origin})
    if allowed:
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert simple.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-origin" not in simple.headers
