"""The payment routes against a real localstripe: one customer per user, idempotent
writes (client key or derived), Stripe called before any row is written, Stripe's
errors as clear 4xx/502 JSON errors with nothing written, bad input refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.up import LOCALSTRIPE_STATE, platform_processes
from core.settings import Settings
from devenv.common import CACHE_DIR
from tests.support.api import PASSWORD, api_client, bearer, register, user_with_token
from tests.support.payments import (
    CUSTOMER,
    INTENT,
    SUBSCRIPTION,
    LocalStripe,
    count,
    payment_rows,
    stripe_client,
)
from tests.support.ports import free_port


@pytest.fixture
def api_settings(ls_settings: Settings) -> Settings:
    return ls_settings


async def new_plan(s: Settings, amount: int = 1500) -> str:
    async with stripe_client(s) as stripe:
        plan = await stripe.v1.plans.create_async(
            params={
                "amount": amount,
                "currency": "usd",
                "interval": "month",
                "product": {"name": "ConnectIn Pro"},
            }
        )
    return plan.id


async def test_one_customer_per_user_with_our_user_id_in_metadata(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    user, token = await user_with_token(client)
    first = await client.post(CUSTOMER, headers=bearer(token))
    second = await client.post(CUSTOMER, headers=bearer(token))
    assert first.status_code == second.status_code == 200, first.text
    customer_id = first.json()["customer_id"]
    assert second.json() == {"customer_id": customer_id}
    assert customer_id.startswith("cus_")
    async with stripe_client(ls_settings) as stripe:
        customer = await stripe.v1.customers.retrieve_async(customer_id)
    assert customer.to_dict()["metadata"] == {"user_id": str(user["id"])}
    assert customer.email == user["email"]
    assert await count(clean_db, "stripe_customers") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.customer_created'") == 1


async def test_retried_payment_intent_with_the_same_idempotency_key_is_the_same_intent(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    _, token = await user_with_token(client)
    headers = {**bearer(token), "Idempotency-Key": "checkout-42"}
    body = {"amount": 2000, "currency": "usd"}
    first = await client.post(INTENT, json=body, headers=headers)
    retry = await client.post(INTENT, json=body, headers=headers)
    assert first.status_code == retry.status_code == 200, first.text
    assert retry.json() == first.json()
    assert first.json()["client_secret"].startswith(first.json()["payment_intent_id"])
    assert await count(clean_db, "payments") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.intent_created'") == 1

    reused = await client.post(INTENT, json={"amount": 999, "currency": "usd"}, headers=headers)
    assert reused.status_code == 409, reused.text
    assert "Idempotency-Key" in reused.json()["detail"]
    other = await client.post(
        INTENT, json=body, headers={**bearer(token), "Idempotency-Key": "checkout-43"}
    )
    assert other.status_code == 200
    assert other.json()["payment_intent_id"] != first.json()["payment_intent_id"]
    assert await count(clean_db, "payments") == 2

    # Keys are the caller's own: another user's "checkout-42" is another intent.
    _, token_b = await user_with_token(client)
    theirs = await client.post(
        INTENT, json=body, headers={**bearer(token_b), "Idempotency-Key": "checkout-42"}
    )
    assert theirs.json()["payment_intent_id"] != first.json()["payment_intent_id"]


async def test_without_a_key_a_retry_reuses_the_unfinished_intent_and_a_new_purchase_does_not(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    _, token = await user_with_token(client)
    body = {"amount": 1500, "currency": "EUR"}
    first = await client.post(INTENT, json=body, headers=bearer(token))
    retry = await client.post(INTENT, json=body, headers=bearer(token))
    assert first.status_code == retry.status_code == 200, first.text
    assert retry.json()["payment_intent_id"] == first.json()["payment_intent_id"]
    assert await count(clean_db, "payments") == 1
    # Once that intent finished (the payment consumer's doing in production), the same
    # body is a new purchase and gets a new intent.
    async with clean_db.begin() as conn:
        await conn.execute(text("UPDATE payments SET status = 'succeeded'"))
    again = await client.post(INTENT, json=body, headers=bearer(token))
    assert again.json()["payment_intent_id"] != first.json()["payment_intent_id"]
    assert await count(clean_db, "payments") == 2


async def test_the_frontends_same_origin_fetch_works_with_the_login_cookie(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    user = await register(client)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert login.status_code == 200
    assert "access_token" in client.cookies
    # Exactly the original integration's call: no Authorization header.
    response = await client.post(
        INTENT,
        headers={"Content-Type": "application/json"},
        content=b'{"amount": 1000, "currency": "usd"}',
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"client_secret", "payment_intent_id"}
    client.cookies.clear()
    assert (await client.post(INTENT, json={"amount": 1000, "currency": "usd"})).status_code == 401


BAD_INTENTS: list[tuple[Any, str]] = [
    ({"amount": 0, "currency": "usd"}, "amount"),
    ({"amount": -5, "currency": "usd"}, "amount"),
    ({"amount": 10.5, "currency": "usd"}, "amount"),
    ({"amount": True, "currency": "usd"}, "amount"),
    ({"amount": 1_000_001, "currency": "usd"}, "amount"),
    ({"amount": 100, "currency": "xyz"}, "currency"),
    ({"amount": 100, "currency": "us"}, "currency"),
    ({"amount": 100}, "currency"),
    ({"amount": 100, "currency": "usd", "confirm": True}, "confirm"),
    ([100, "usd"], ""),
    # Strict types: no coercion of strings or floats where the schema says integer.
    ({"amount": "100", "currency": "usd"}, "amount"),
    ({"amount": 100.0, "currency": "usd"}, "amount"),
    # Whole-string patterns: `$` must not let a trailing newline through.
    ({"amount": 100, "currency": "usd\n"}, "currency"),
]
# Bodies json.dumps cannot write: an exponent is a float too.
RAW_BAD_INTENTS = [b'{"amount": 1e3, "currency": "usd"}', b'{"amount": 1E2, "currency": "usd"}']
BAD_SUBSCRIPTIONS: list[dict[str, Any]] = [
    {"price_id": "prod_123"},
    {"price_id": "plan_1", "payment_method": "card_1"},
    {},
    {"price_id": "plan_gold\n"},
    {"price_id": "plan_gold", "payment_method": "pm_card_visa\n"},
]


async def test_bad_input_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine
) -> None:
    _, token = await user_with_token(client)
    before = await payment_rows(clean_db)
    for body, field in BAD_INTENTS:
        response = await client.post(INTENT, json=body, headers=bearer(token))
        assert response.status_code == 400, (body, response.text)
        assert field in response.text, (body, response.text)
    for raw in RAW_BAD_INTENTS:
        headers = {**bearer(token), "Content-Type": "application/json"}
        response = await client.post(INTENT, content=raw, headers=headers)
        assert response.status_code == 400, (raw, response.text)
        assert "Expected `int`, got `float`" in response.text, response.text
    for body in BAD_SUBSCRIPTIONS:
        response = await client.post(SUBSCRIPTION, json=body, headers=bearer(token))
        assert response.status_code == 400, (body, response.text)
    bad_key = {**bearer(token), "Idempotency-Key": "x" * 256}
    response = await client.post(INTENT, json={"amount": 100, "currency": "usd"}, headers=bad_key)
    assert response.status_code == 400, response.text
    assert (await client.post(INTENT, json={"amount": 100, "currency": "usd"})).status_code == 401
    assert await payment_rows(clean_db) == before


async def test_stripe_errors_are_clear_and_write_nothing(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    _, token = await user_with_token(client)
    assert (await client.post(CUSTOMER, headers=bearer(token))).status_code == 200
    before = await payment_rows(clean_db)

    missing = await client.post(
        SUBSCRIPTION, json={"price_id": "plan_missing"}, headers=bearer(token)
    )
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"] == "stripe_invalid_request"

    plan = await new_plan(ls_settings)
    declined = await client.post(
        SUBSCRIPTION,
        json={"price_id": plan, "payment_method": "pm_card_visa_chargeDeclined"},
        headers=bearer(token),
    )
    assert declined.status_code == 402, declined.text
    assert declined.json()["error"] == "card_error"
    assert "declined" in declined.json()["detail"]

    no_default = await client.post(SUBSCRIPTION, json={"price_id": plan}, headers=bearer(token))
    assert no_default.status_code == 400, no_default.text
    assert "payment method" in no_default.json()["detail"]
    assert await payment_rows(clean_db) == before

    # Stripe unreachable: a 502 that says so, and still nothing written.
    unreachable = replace(
        ls_settings, stripe=replace(ls_settings.stripe, api_base=f"http://127.0.0.1:{free_port()}")
    )
    async with api_client(unreachable) as down:
        response = await down.post(
            INTENT, json={"amount": 100, "currency": "usd"}, headers=bearer(token)
        )
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "stripe_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert await payment_rows(clean_db) == before


async def test_subscription_with_the_frontends_payment_method_and_a_retry(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    user, token = await user_with_token(client)
    plan = await new_plan(ls_settings)
    body = {"price_id": plan, "payment_method": "pm_card_visa"}
    headers = {**bearer(token), "Idempotency-Key": "subscribe-1"}
    first = await client.post(SUBSCRIPTION, json=body, headers=headers)
    assert first.status_code == 200, first.text
    retry = await client.post(SUBSCRIPTION, json=body, headers=headers)
    assert retry.json()["subscription_id"] == first.json()["subscription_id"]
    assert first.json()["status"] == "active"
    assert await count(clean_db, "subscriptions") == 1
    assert await count(clean_db, "stripe_customers") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.subscription_created'") == 1
    async with stripe_client(ls_settings) as stripe:
        sub = await stripe.v1.subscriptions.retrieve_async(first.json()["subscription_id"])
        customer = await stripe.v1.customers.retrieve_async(str(sub.customer))
    assert sub.to_dict()["metadata"] == {"user_id": str(user["id"])}
    assert customer.invoice_settings is not None
    assert str(customer.invoice_settings.default_payment_method).startswith("pm_")

    listed = await client.get("/api/v1/payments/subscriptions", headers=bearer(token))
    assert [s["subscription_id"] for s in listed.json()] == [first.json()["subscription_id"]]
    _, other = await user_with_token(client)
    assert (await client.get("/api/v1/payments/subscriptions", headers=bearer(other))).json() == []
    assert (await client.get("/api/v1/payments", headers=bearer(other))).json() == []


async def test_config_gives_the_publishable_key_without_login(
    client: httpx.AsyncClient, ls_settings: Settings
) -> None:
    response = await client.get("/api/v1/payments/config")
    assert response.status_code == 200
    assert response.json() == {"publishable_key": ls_settings.stripe.publishable_key}


def _file_holds(path: Path, needle: str) -> bool:
    return path.exists() and needle.encode() in path.read_bytes()


async def test_each_localstripe_keeps_its_state_in_a_file_of_its_own(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    localstripe: LocalStripe,
) -> None:
    """localstripe's own default is one /tmp/localstripe.pickle for every server on the
    machine (devenv/localstripe_server.py)."""
    _, token = await user_with_token(client)
    created = await client.post(CUSTOMER, headers=bearer(token))
    customer_id = created.json()["customer_id"]
    assert _file_holds(localstripe.state_path, customer_id)
    assert not _file_holds(Path("/tmp/localstripe.pickle"), customer_id)


def test_connectin_up_runs_localstripe_on_a_state_file_of_this_checkout() -> None:
    """`connectin up` keeps its Stripe objects beside its database, in `.cache/`, not in
    the machine-wide default file that the tests' servers and other checkouts' would
    share."""
    (stripe,) = [p for p in platform_processes(8000, 8420) if p.name == "localstripe"]
    assert stripe.argv[1:4] == ["-m", "devenv.localstripe_server", str(LOCALSTRIPE_STATE)]
    assert LOCALSTRIPE_STATE.is_relative_to(CACHE_DIR)
    assert "--from-scratch" not in stripe.argv
