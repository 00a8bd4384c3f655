"""Registration, login, tokens, cookies and the login rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import issue_token
from core.settings import Settings
from tests.support.api import (
    PASSWORD,
    api_client,
    bearer,
    login,
    register,
    row_counts,
    user_with_token,
)


async def test_register_stores_an_argon2id_hash_with_owasp_parameters(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    user = await register(client, "alice")
    assert user["username"] == "alice" and user["email"] == "alice@example.com"
    assert "password" not in str(user) and "hash" not in str(user)
    async with clean_db.connect() as conn:
        stored = (
            await conn.execute(text("SELECT password_hash FROM users WHERE id = :id"), user)
        ).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_email_is_normalized_so_case_variants_conflict(client: httpx.AsyncClient) -> None:
    await register(client, "bob")
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": "bob2", "email": "  BOB@Example.COM ", "password": PASSWORD},
    )
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "detail": "email is already registered"}


async def test_concurrent_duplicate_registrations_give_one_201_and_409s(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    """The pre-check cannot see uncommitted rows; the unique constraint must catch the
    race and answer 409, never 500, and leave exactly one user and one event."""
    body = {"username": "racer", "email": "racer@example.com", "password": PASSWORD}
    responses = await asyncio.gather(
        *(client.post("/api/v1/auth/register", json=body) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    counts = await row_counts(clean_db)
    assert counts["users"] == 1 and counts["outbox"] == 1


async def test_login_returns_a_bearer_token_and_sets_an_httponly_lax_cookie(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(
        body["access_token"],
        settings.auth.jwt_secret,
        algorithms=["HS256"],
        audience=settings.auth.audience,
        issuer=settings.auth.issuer,
    )
    assert claims["sub"] == str(user["id"])
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"access_token={body['access_token']};")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie


async def test_bearer_header_authenticates(client: httpx.AsyncClient) -> None:
    user, token = await user_with_token(client)
    response = await client.get("/api/v1/users/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == user["id"]


async def test_cookie_alone_authenticates(client: httpx.AsyncClient) -> None:
    user = await register(client)
    await client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert "access_token" in client.cookies
    response = await client.get("/api/v1/users/me")
    assert response.status_code == 200
    assert response.json()["id"] == user["id"]
    created = await client.post("/api/v1/projects", json={"title": "via cookie"})
    assert created.status_code == 201 and created.json()["owner_id"] == user["id"]


@pytest.mark.parametrize("password", ["wrong password!", ""])
async def test_wrong_password_is_401_and_emits_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine, password: str
) -> None:
    user = await register(client)
    before = await row_counts(clean_db)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": password}
    )
    assert response.status_code in (400, 401)
    assert "access_token" not in response.text and "set-cookie" not in response.headers
    assert await row_counts(clean_db) == before


async def test_unknown_email_is_the_same_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "detail": "invalid email or password"}
    assert response.headers["www-authenticate"] == "Bearer"


def _claims(settings: Settings, user_id: int, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(settings: Settings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.auth.jwt_secret, algorithm="HS256")


BAD_TOKENS: dict[str, Callable[[Settings, int], str]] = {
    "expired": lambda s, u: _hs256(
        s,
        _claims(
            s,
            u,
            iat=datetime.now(UTC) - timedelta(hours=2),
            exp=datetime.now(UTC) - timedelta(hours=1),
        ),
    ),
    "wrong audience": lambda s, u: _hs256(s, _claims(s, u, aud="someone-else")),
    "audience list": lambda s, u: _hs256(s, _claims(s, u, aud=[s.auth.audience, "other"])),
    "wrong issuer": lambda s, u: _hs256(s, _claims(s, u, iss="evil")),
    "alg none": lambda s, u: jwt.encode(_claims(s, u), None, algorithm="none"),
    "alg none, forged": lambda s, u: _hs256(s, _claims(s, u)).rsplit(".", 1)[0] + ".",
    "bad signature": lambda s, u: jwt.encode(_claims(s, u), "x" * 40, algorithm="HS256"),
    "other hmac alg": lambda s, u: jwt.encode(_claims(s, u), s.auth.jwt_secret, algorithm="HS512"),
    "no exp": lambda s, u: _hs256(s, _claims(s, u, exp=None)),
    "no iss": lambda s, u: _hs256(s, _claims(s, u, iss=None)),
    "no aud": lambda s, u: _hs256(s, _claims(s, u, aud=None)),
    "no sub": lambda s, u: _hs256(s, _claims(s, u, sub=None)),
    "sub not a user id": lambda s, u: _hs256(s, _claims(s, u, sub="admin")),
    "not before in future": lambda s, u: _hs256(
        s, _claims(s, u, nbf=datetime.now(UTC) + timedelta(minutes=2))
    ),
    "garbage": lambda s, u: "not.a.jwt",
}


# The HS512 case signs with our 36-byte secret on purpose.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case", list(BAD_TOKENS))
@pytest.mark.parametrize("carrier", ["header", "cookie"])
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, settings: Settings, case: str, carrier: str
) -> None:
    user = await register(client)
    token = BAD_TOKENS[case](settings, user["id"])
    if carrier == "header":
        response = await client.get("/api/v1/users/me", headers=bearer(token))
    else:
        response = await client.get("/api/v1/users/me", headers={"Cookie": f"access_token={token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"


async def test_a_well_formed_token_passes_the_same_checks(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register(client)
    response = await client.get(
        "/api/v1/users/me", headers=bearer(_hs256(settings, _claims(settings, user["id"])))
    )
    assert response.status_code == 200


async def test_token_for_a_user_that_no_longer_exists_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get(
        "/api/v1/users/me", headers=bearer(issue_token(settings.auth, 987_654))
    )
    assert response.status_code == 401


async def test_no_credentials_is_401(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/v1/users/me",
        "/api/v1/projects",
        "/api/v1/messages",
        "/api/v1/notifications",
    ):
        response = await client.get(path)
        assert response.status_code == 401, path


async def test_login_rate_limit_is_429_with_retry_after(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    limited = replace(settings, auth=replace(settings.auth, login_attempts_per_minute=3))
    async with api_client(limited) as client:
        user = await register(client)
        other = await register(client)
        for _ in range(3):
            response = await client.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": "nope nope"}
            )
            assert response.status_code == 401
        before = await row_counts(clean_db)
        blocked = await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        assert blocked.status_code == 429
        assert blocked.json()["error"] == "rate_limited"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert await row_counts(clean_db) == before  # no user.login for a refused attempt
        # Each account has its own budget: another account from the same address works.
        await login(client, other["email"])
