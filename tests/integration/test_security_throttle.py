"""Login throttling that holds (issue 12): forwarding headers count only from
TRUSTED_PROXIES, the budgets live in Postgres and are shared by every app instance and
process, per account and per client address, and the table does not grow without
bound. Nothing is written for a refused or failed login.

The in-process tests freeze the throttle's clock, so no result depends on how fast
this machine runs the argon2 verifications.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

import httpx
import pytest
from litestar.datastructures import Headers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.client_address import client_address
from api.ratelimit import PURGE_BATCH, LoginThrottle
from core.settings import ApiSettings, Settings
from tests.support.api import BASE_URL, PASSWORD, register, row_counts, running
from tests.support.ports import free_port
from tests.support.processes import api_process, settings_env

LOGIN = "/api/v1/auth/login"


@dataclass
class FrozenClock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())


def throttled(
    settings: Settings,
    *,
    per_account: int,
    per_address: int,
    trusted: tuple[str, ...] = (),
    header: str = "x-forwarded-for",
) -> Settings:
    return replace(
        settings,
        auth=replace(
            settings.auth,
            login_attempts_per_minute=per_account,
            login_address_attempts_per_minute=per_address,
        ),
        api=replace(settings.api, trusted_proxies=trusted, proxy_header=header),
    )


@asynccontextmanager
async def client_of(
    s: Settings, clock: FrozenClock, peer: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (its own engine and pool) reached from TCP peer `peer`, with the
    throttle the app builds from `s`, on the frozen clock."""
    app = create_app(s)
    app.state.login_limiter = LoginThrottle(
        s.auth.login_attempts_per_minute, s.auth.login_address_attempts_per_minute, clock=clock
    )
    transport = httpx.ASGITransport(app=cast(Any, app), client=(peer, 50_000))
    async with running(app), httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


async def attempt(
    client: httpx.AsyncClient, account: str, password: str, **headers: str
) -> httpx.Response:
    field = "email" if "@" in account else "username"
    return await client.post(
        LOGIN, json={field: account, "password": password}, headers=headers or None
    )


async def address_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT key FROM login_throttle WHERE scope = 'address' ORDER BY key")
        )
        return list(rows.scalars())


async def test_forwarded_for_from_an_untrusted_peer_buys_no_guesses(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    """The finding: a new X-Forwarded-For per guess, then the right password got 200."""
    s = throttled(settings, per_account=10, per_address=30)
    async with client_of(s, clock) as client:
        user = await register(client)
        before = await row_counts(clean_db)
        statuses = []
        for i in range(25):
            # Both header spellings, a new address each time.
            forged = (
                {"X-Forwarded-For": f"198.51.100.{i}"}
                if i % 2
                else {"Forwarded": f"for=198.51.100.{i}"}
            )
            response = await attempt(client, user["email"], f"guess number {i}", **forged)
            statuses.append(response.status_code)
        assert statuses == [401] * 10 + [429] * 15
        right = await attempt(
            client, user["email"], PASSWORD, **{"X-Forwarded-For": "198.51.100.250"}
        )
        assert right.status_code == 429
        assert right.json() == {
            "error": "rate_limited",
            "detail": "too many login attempts, retry later",
        }
        # 10 attempts at once empty the bucket; one comes back every 60 / 10 s.
        assert right.headers["retry-after"] == "6"
        assert "access_token" not in right.text and "set-cookie" not in right.headers
        assert await row_counts(clean_db) == before  # no user.login, nothing else
        assert await address_keys(clean_db) == ["127.0.0.1"]

        clock.now += 6
        assert (await attempt(client, user["email"], PASSWORD)).status_code == 200
        assert (await row_counts(clean_db))["outbox"] == before["outbox"] + 1


async def test_an_untrusted_peer_is_one_address_whatever_it_forwards(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    """Guessing many accounts from one address: the address budget, not the forged
    headers, decides."""
    s = throttled(settings, per_account=10, per_address=5)
    async with client_of(s, clock, peer="192.0.2.10") as client:
        responses = [
            await attempt(
                client,
                f"victim{i}@example.com",
                "guess guess",
                **{"X-Forwarded-For": f"10.9.8.{i}"},
            )
            for i in range(8)
        ]
    assert [r.status_code for r in responses] == [401] * 5 + [429] * 3
    # Unknown accounts get the same 429 as known ones (see the test above).
    assert {r.text for r in responses[5:]} == {
        '{"error":"rate_limited","detail":"too many login attempts, retry later"}'
    }
    assert await address_keys(clean_db) == ["192.0.2.10"]
    assert (await row_counts(clean_db))["users"] == 0


async def test_behind_a_trusted_proxy_the_forwarded_client_is_the_address(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    s = throttled(settings, per_account=100, per_address=3, trusted=("127.0.0.0/8",))
    async with client_of(s, clock) as client:
        for i in range(3):
            response = await attempt(
                client, f"a{i}@example.com", "guess guess", **{"X-Forwarded-For": "203.0.113.7"}
            )
            assert response.status_code == 401
        # The client's own entries come first; our proxies append on the right.
        for chain in ("203.0.113.7", "203.0.113.99, 203.0.113.7", "203.0.113.7, 127.0.0.5"):
            response = await attempt(
                client, "z@example.com", "guess guess", **{"X-Forwarded-For": chain}
            )
            assert response.status_code == 429, chain
        other = await attempt(
            client, "a0@example.com", "guess guess", **{"X-Forwarded-For": "203.0.113.8"}
        )
        assert other.status_code == 401
    assert await address_keys(clean_db) == ["203.0.113.7", "203.0.113.8"]


async def test_forwarded_header_mode_reads_only_forwarded_and_keys_ipv6_by_64(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    s = throttled(
        settings, per_account=100, per_address=2, trusted=("127.0.0.1",), header="forwarded"
    )
    async with client_of(s, clock) as client:
        for host in ('"[2001:db8::1]:4711"', "2001:db8::2"):
            response = await attempt(
                client, "v6@example.com", "guess guess", Forwarded=f"for={host};proto=https"
            )
            assert response.status_code == 401
        # Another address of the same /64: the same budget, now spent.
        third = await attempt(client, "v6@example.com", "guess guess", Forwarded="for=2001:db8::3")
        assert third.status_code == 429
        # In this mode X-Forwarded-For is the client's own text: the proxy is the address.
        xff = await attempt(
            client, "v6@example.com", "guess guess", **{"X-Forwarded-For": "203.0.113.1"}
        )
        assert xff.status_code == 401
    assert await address_keys(clean_db) == ["127.0.0.1", "2001:db8::/64"]


async def test_two_app_instances_with_their_own_pools_share_the_budgets(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    """A per-process limiter gave N workers N x the guesses."""
    s = throttled(settings, per_account=4, per_address=1000)
    async with client_of(s, clock) as first, client_of(s, clock) as second:
        user = await register(first)
        statuses = [
            (await attempt((first, second)[i % 2], user["email"], "guess guess")).status_code
            for i in range(10)
        ]
        assert statuses == [401] * 4 + [429] * 6
        assert (await attempt(second, user["email"], PASSWORD)).status_code == 429


async def test_concurrent_attempts_cannot_overdraw_a_budget(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    s = throttled(settings, per_account=5, per_address=1000)
    async with client_of(s, clock) as client:
        user = await register(client)
        responses = await asyncio.gather(
            *(attempt(client, user["email"], "guess guess") for _ in range(20))
        )
    assert sorted(r.status_code for r in responses) == [401] * 5 + [429] * 15


async def test_username_and_email_logins_are_throttled_by_the_normalised_name(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    """Case and compatibility spellings of one name are one budget."""
    s = throttled(settings, per_account=3, per_address=1000)
    async with client_of(s, clock) as client:
        user = await register(client, "Throttled")
        for name in ("throttled", "THROTTLED", "\uff54hrottled"):
            assert (await attempt(client, name, "guess guess")).status_code == 401
        assert (await attempt(client, "Throttled", PASSWORD)).status_code == 429
        for email in (user["email"], user["email"].upper(), " " + user["email"]):
            assert (await attempt(client, email, "guess guess")).status_code == 401
        assert (await attempt(client, user["email"], PASSWORD)).status_code == 429


async def test_expired_budgets_are_purged_by_the_attempts_themselves(
    settings: Settings, clean_db: AsyncEngine, clock: FrozenClock
) -> None:
    stale = PURGE_BATCH + PURGE_BATCH // 2
    async with clean_db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO login_throttle (scope, key, tat) "
                "SELECT 'address', 'stale-' || g, :tat FROM generate_series(1, :n) AS g"
            ),
            {"tat": clock.now - 3600, "n": stale},
        )

    async def expired() -> int:
        async with clean_db.connect() as conn:
            count = await conn.execute(
                text("SELECT count(*) FROM login_throttle WHERE tat < :now"), {"now": clock.now}
            )
            return int(count.scalar_one())

    async with client_of(throttled(settings, per_account=10, per_address=10), clock) as client:
        await attempt(client, "p@example.com", "guess guess")
        assert await expired() == stale - PURGE_BATCH
        await attempt(client, "p@example.com", "guess guess")
        assert await expired() == 0
        # A budget that refilled completely is purged too: the table holds only keys
        # seen within the last period.
        clock.now += 61
        await attempt(client, "q@example.com", "guess guess")
    async with clean_db.connect() as conn:
        keys = await conn.execute(text("SELECT scope, key FROM login_throttle ORDER BY 1, 2"))
        assert [tuple(r) for r in keys] == [
            ("account", "email:q@example.com"),
            ("address", "127.0.0.1"),
        ]


# --- two real `connectin api` processes ------------------------------------------


async def test_two_connectin_api_processes_share_the_limit_and_ignore_forwarding(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """Real processes, real clock: 2 attempts a minute per account, so the whole
    exchange has 30 s before one attempt comes back. uvicorn trusts X-Forwarded-For
    from 127.0.0.1 by default; `connectin api` must not."""
    env = settings_env(
        settings, LOGIN_ATTEMPTS_PER_MINUTE="2", LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE="1000"
    )
    with (
        api_process(env, free_port()) as first_api,
        api_process(env, free_port()) as second_api,
    ):
        first, second = first_api.base_url, second_api.base_url
        async with httpx.AsyncClient(timeout=30) as http:
            name = f"proc{os.getpid()}"
            registered = await http.post(
                first + "/api/v1/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
            )
            assert registered.status_code == 201, registered.text
            before = await row_counts(clean_db)
            statuses = []
            for i in range(12):
                response = await http.post(
                    (first, second)[i % 2] + LOGIN,
                    json={"email": f"{name}@example.com", "password": "guess guess"},
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                )
                statuses.append(response.status_code)
            right = await http.post(
                second + LOGIN, json={"email": f"{name}@example.com", "password": PASSWORD}
            )
    assert statuses == [401] * 2 + [429] * 10
    assert right.status_code == 429
    assert await row_counts(clean_db) == before
    assert await address_keys(clean_db) == ["127.0.0.1"]


# --- the address rules, one by one --------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "header", "expected"),
    [
        ("192.0.2.1", {"x-forwarded-for": "1.1.1.1"}, (), "x-forwarded-for", "192.0.2.1"),
        ("10.0.0.2", {"x-forwarded-for": "1.1.1.1"}, ("10.0.0.0/8",), "x-forwarded-for", "1.1.1.1"),
        (
            "10.0.0.2",
            {"x-forwarded-for": "6.6.6.6, 1.1.1.1, 10.0.0.3"},
            ("10.0.0.0/8",),
            "x-forwarded-for",
            "1.1.1.1",
        ),
        (
            "10.0.0.2",
            {"x-forwarded-for": "1.1.1.1:5555"},
            ("10.0.0.0/8",),
            "x-forwarded-for",
            "1.1.1.1",
        ),
        (
            "10.0.0.2",
            {"x-forwarded-for": "garbage"},
            ("10.0.0.0/8",),
            "x-forwarded-for",
            "10.0.0.2",
        ),
        ("10.0.0.2", {}, ("10.0.0.0/8",), "x-forwarded-for", "10.0.0.2"),
        (
            "10.0.0.2",
            {"forwarded": 'for="[2001:db8:1::7]:80";by=x, for=10.0.0.9'},
            ("10.0.0.0/8",),
            "forwarded",
            "2001:db8:1::/64",
        ),
        ("10.0.0.2", {"forwarded": "for=unknown"}, ("10.0.0.0/8",), "forwarded", "10.0.0.2"),
        ("::ffff:192.0.2.5", {}, (), "x-forwarded-for", "192.0.2.5"),
        (None, {}, (), "x-forwarded-for", "unknown"),
    ],
)
def test_client_address_rules(
    peer: str | None, headers: dict[str, str], trusted: tuple[str, ...], header: str, expected: str
) -> None:
    api = replace(ApiSettings(), trusted_proxies=trusted, proxy_header=header)
    assert client_address(peer, Headers(headers), api) == expected
