"""/ops endpoints: only the operator token opens them (401 matrix), no OPS_TOKEN means
they are off, and their numbers are the database's."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import issue_token
from core.settings import Settings
from tests.support.api import api_client, bearer
from tests.support.kafka import read_committed
from tests.support.ops import (
    add_dead_letter,
    add_outbox_rows,
    create_topic,
    db_backlog,
    with_thresholds,
)
from tests.support.ports import free_port

TOKEN = "ops-token-for-tests-9f3c"
ENDPOINTS = [
    ("GET", "/ops"),
    ("GET", "/ops/status"),
    ("GET", "/ops/outbox"),
    ("GET", "/ops/consumers"),
    ("GET", "/ops/dlq"),
    ("POST", "/ops/dlq/999999/replay"),
]


def ops_settings(settings: Settings, token: str = TOKEN) -> Settings:
    s = with_thresholds(settings)
    return replace(s, api=replace(s.api, ops_token=token))


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return ops_settings(settings)


def _refusals(settings: Settings) -> dict[str, dict[str, str]]:
    user_jwt = issue_token(settings.auth, 1)
    return {
        "missing": {},
        "wrong": bearer("not-the-token"),
        "prefix of the token": bearer(TOKEN[:-1]),
        "token with a suffix": bearer(TOKEN + "x"),
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": f"Basic {TOKEN}"},
        "token without scheme": {"Authorization": TOKEN},
        # A logged-in user is not an operator.
        "user jwt": bearer(user_jwt),
    }


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_anything_but_the_operator_token_is_401(
    client: httpx.AsyncClient, settings: Settings, method: str, path: str
) -> None:
    for case, headers in _refusals(settings).items():
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 401, f"{case}: {response.status_code}"
        assert response.headers["www-authenticate"].startswith("Bearer"), case
        if path != "/ops":
            assert "OPS_TOKEN" in response.json()["detail"], case


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_operator_token_opens_them(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=bearer(TOKEN))
    if path.endswith("/replay"):
        assert response.status_code == 404, response.text
        return
    assert response.status_code == 200, response.text
    # Live, operator-only numbers: no browser or proxy may keep a copy.
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_no_ops_token_configured_turns_them_off(
    settings: Settings, clean_db: AsyncEngine, method: str, path: str
) -> None:
    async with api_client(ops_settings(settings, token="")) as client:
        for headers in ({}, bearer(""), bearer("anything")):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 503, response.text
            if path != "/ops":
                assert "set OPS_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_options_names_the_methods_without_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """The guard sits on the router, and Litestar runs a router's guards on its
    automatic OPTIONS answers too: those must stay what they were, token or not."""
    response = await client.options(path)
    assert response.status_code == 204, response.text
    assert method in response.headers["allow"].split(", ")


async def test_the_user_auth_still_guards_the_user_api(client: httpx.AsyncClient) -> None:
    """Excluding /ops from JWT auth must not have opened anything else."""
    response = await client.get("/api/v1/notifications", headers=bearer(TOKEN))
    assert response.status_code == 401


async def test_outbox_numbers_are_the_databases(
    client: httpx.AsyncClient, settings: Settings, clean_db: AsyncEngine
) -> None:
    topic = settings.kafka.topics.user
    await add_outbox_rows(clean_db, topic, shard=1, count=4, age_s=30)
    await add_outbox_rows(clean_db, topic, shard=3, count=1, age_s=90)
    body = (await client.get("/ops/outbox", headers=bearer(TOKEN))).json()
    expected = await db_backlog(clean_db)
    assert body["pending"] == sum(n for n, _ in expected.values()) == 5
    for shard in body["shards"]:
        pending, age = expected.get(shard["shard"], (0, 0.0))
        assert shard["pending"] == pending
        assert shard["oldest_age_s"] == pytest.approx(age, abs=2)
    assert [b["subject"] for b in body["breaches"]] == ["shard 3"]

    status = (await client.get("/ops/status", headers=bearer(TOKEN))).json()
    assert status["outbox"]["pending"] == 5
    assert status["verdict"] == "breach"


async def test_dlq_lists_and_replays(
    client: httpx.AsyncClient, settings: Settings, clean_db: AsyncEngine
) -> None:
    topic = f"{settings.kafka.topics.user}-opsreplay"
    await asyncio.to_thread(create_topic, settings, topic, 1)
    first = await add_dead_letter(clean_db, topic, error="handler exploded <script>")
    second = await add_dead_letter(clean_db, topic)
    await add_dead_letter(clean_db, topic, replayed=True)

    body = (await client.get("/ops/dlq", headers=bearer(TOKEN))).json()
    assert body["by_topic"] == {topic: 2}
    assert [d["id"] for d in body["dead_letters"]] == [second, first]
    everything = (await client.get("/ops/dlq?pending=false", headers=bearer(TOKEN))).json()
    assert len(everything["dead_letters"]) == 3
    assert (await client.get("/ops/dlq?limit=0", headers=bearer(TOKEN))).status_code == 400

    replayed = await client.post(f"/ops/dlq/{first}/replay", headers=bearer(TOKEN))
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["ok"] is True
    async with clean_db.connect() as conn:
        done = await conn.execute(
            text("SELECT id FROM dead_letters WHERE replayed_at IS NOT NULL ORDER BY id")
        )
        assert first in {r.id for r in done}
    records = await asyncio.to_thread(read_committed, settings, [topic])
    assert records[-1].headers["connectin_replay_of"] == str(first)
    after = (await client.get("/ops/dlq", headers=bearer(TOKEN))).json()
    assert after["by_topic"] == {topic: 1}


async def test_page_is_self_contained_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/ops", headers=bearer(TOKEN))
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    # Nothing loaded from anywhere: no src/href attributes pointing out, no CDN.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "{{" not in html, "a placeholder was left in the page"
    assert 'id="pending-total"' in html


async def test_metrics_carry_the_status_after_a_scrape(
    client: httpx.AsyncClient, settings: Settings, clean_db: AsyncEngine
) -> None:
    await add_outbox_rows(clean_db, settings.kafka.topics.user, shard=2, count=3, age_s=10)
    # The first scrape starts a refresh; a later one serves it.
    await client.get("/metrics")
    exposition = ""
    for _ in range(100):
        exposition = (await client.get("/metrics")).text
        if "connectin_status_outbox_pending_events{" in exposition:
            break
        await asyncio.sleep(0.1)
    assert 'connectin_status_outbox_pending_events{shard="2"} 3.0' in exposition
    assert 'connectin_status_shard_leader{shard="2"} 0.0' in exposition
    assert "connectin_status_up 1.0" in exposition


async def test_a_part_that_cannot_be_read_is_503_with_the_reason(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Kafka unreachable: /ops/consumers cannot be answered, and says why."""
    s = ops_settings(settings)
    s = replace(s, kafka=replace(s.kafka, bootstrap_servers=f"127.0.0.1:{free_port()}"))
    async with api_client(s) as client:
        response = await client.get("/ops/consumers", headers=bearer(TOKEN))
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "unavailable"
    assert body["detail"].startswith("kafka: "), body
