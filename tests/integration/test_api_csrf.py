"""CSRF: a write that relies on the login cookie must be JSON and, when the browser
names its Origin, come from an allowed one (403 otherwise, nothing written); bearer
requests are unaffected. The cookie is Secure outside development."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import DEVELOPMENT, Settings
from tests.support.api import BASE_URL, PASSWORD, api_client, bearer, register, row_counts

PROJECTS = "/api/v1/projects"
READ_ALL = "/api/v1/notifications/read-all"
ALLOWED = "http://localhost:3000"
BODY = json.dumps({"title": "via cookie"}).encode()


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return replace(settings, api=replace(settings.api, cors_origins=(ALLOWED,)))


async def cookie_login(client: httpx.AsyncClient) -> str:
    """Logs in as a browser does (the cookie stays in the client); returns the token."""
    user = await register(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert "access_token" in client.cookies
    token: str = response.json()["access_token"]
    return token


REFUSED = {
    "text/plain body": {"content-type": "text/plain"},
    "form body": {"content-type": "application/x-www-form-urlencoded"},
    "no content type": {},
    "JSON from another origin": {
        "content-type": "application/json",
        "origin": "https://evil.example",
    },
    "JSON from origin null": {"content-type": "application/json", "origin": "null"},
    "JSON from our host over another port": {
        "content-type": "application/json",
        "origin": "https://testserver:8443",
    },
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_cookie_writes_that_a_foreign_site_could_send_are_403_and_write_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine, case: str
) -> None:
    await cookie_login(client)
    before = await row_counts(clean_db)
    response = await client.post(PROJECTS, content=BODY, headers=REFUSED[case])
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    # A write without a body is refused the same way.
    response = await client.post(READ_ALL, headers=REFUSED[case])
    assert response.status_code == 403, response.text
    assert await row_counts(clean_db) == before


@pytest.mark.parametrize(
    "origin", [None, ALLOWED, BASE_URL], ids=["no Origin", "allowed origin", "same origin"]
)
async def test_cookie_writes_as_json_from_allowed_origins_pass(
    client: httpx.AsyncClient, clean_db: AsyncEngine, origin: str | None
) -> None:
    await cookie_login(client)
    headers = {"content-type": "application/json; charset=utf-8"}
    if origin is not None:
        headers["origin"] = origin
    response = await client.post(PROJECTS, content=BODY, headers=headers)
    assert response.status_code == 201, response.text


async def test_bearer_requests_are_not_affected(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    token = await cookie_login(client)
    client.cookies.clear()
    headers = {**bearer(token), "content-type": "text/plain", "origin": "https://evil.example"}
    response = await client.post(PROJECTS, content=BODY, headers=headers)
    assert response.status_code == 201, response.text
    assert (await client.post(READ_ALL, headers=bearer(token))).status_code == 200


async def test_login_from_a_foreign_origin_is_refused_and_logs_nobody_in(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    user = await register(client)
    body = json.dumps({"email": user["email"], "password": PASSWORD}).encode()
    before = await row_counts(clean_db)
    for headers in (
        {"content-type": "text/plain"},
        {"content-type": "application/json", "origin": "https://evil.example"},
    ):
        response = await client.post("/api/v1/auth/login", content=body, headers=headers)
        assert response.status_code == 403, response.text
        assert "set-cookie" not in response.headers
    assert await row_counts(clean_db) == before  # no user.login event in the outbox


async def test_a_bad_cookie_is_still_a_401_not_a_403(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    client.cookies.set("access_token", "not-a-jwt", domain="testserver")
    response = await client.post(PROJECTS, content=BODY, headers={"content-type": "text/plain"})
    assert response.status_code == 401, response.text


async def login_cookie_header(s: Settings) -> str:
    async with api_client(s) as client:
        user = await register(client)
        response = await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return response.headers["set-cookie"]


async def test_the_cookie_is_secure_by_default_outside_development(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    assert settings.environment == "test"
    assert "Secure" in await login_cookie_header(settings)
    env = {**settings.to_env(), "COOKIE_SECURE": ""}
    for environment in ("test", "production"):
        assert Settings.from_env({**env, "CONNECTIN_ENV": environment}).api.cookie_secure
    development = Settings.from_env({**env, "CONNECTIN_ENV": DEVELOPMENT})
    assert not development.api.cookie_secure
    assert "Secure" not in await login_cookie_header(
        replace(settings, api=replace(settings.api, cookie_secure=False))
    )
    overridden = Settings.from_env({**env, "CONNECTIN_ENV": DEVELOPMENT, "COOKIE_SECURE": "true"})
    assert overridden.api.cookie_secure
