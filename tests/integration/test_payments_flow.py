"""The whole payment path on real servers: the API (over HTTP) creates the customer
and the intent at localstripe; the test confirms it with a test card as Stripe.js
would; localstripe's own signed webhook reaches the API, which stores it; the relay
publishes it; the payment consumer applies it; `GET /api/v1/payments` shows
`succeeded` and `payment.processed` is in Kafka exactly once (read_committed).
Likewise a subscription, whose invoice payment Stripe makes by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from stripe import StripeClient

from core.settings import Settings
from tests.support.api import PASSWORD, register, served_api
from tests.support.consumers import wait_until
from tests.support.payments import (
    CUSTOMER,
    INTENT,
    SUBSCRIPTION,
    LocalStripe,
    count,
    payment_settings,
    payments_consumed,
    processed_events_in_kafka,
    register_webhook,
    running_pipeline,
    stripe_client,
)

APPLIED_WITHIN_S = 60.0


def browser_over_http(s: Settings) -> Settings:
    """The API is served over plain http on loopback here, where httpx (unlike a
    browser on localhost) withholds a Secure cookie."""
    return replace(s, api=replace(s.api, cookie_secure=False))


async def logged_in(http: httpx.AsyncClient) -> dict[str, Any]:
    """A new user, logged in through the cookie, as the browser frontend is."""
    user = await register(http)
    response = await http.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return user


@asynccontextmanager
async def whole_platform(
    s: Settings, engine: AsyncEngine, localstripe: LocalStripe
) -> AsyncIterator[tuple[httpx.AsyncClient, StripeClient]]:
    """The API over HTTP with localstripe's webhooks pointed at it, the relay and the
    consumers running; the browser's HTTP client and a Stripe client for what Stripe.js
    and the dashboard do."""
    async with (
        served_api(s) as api_base,
        running_pipeline(s, engine),
        httpx.AsyncClient(base_url=api_base) as http,
        stripe_client(s) as stripe,
    ):
        await register_webhook(localstripe.base_url, api_base, s.stripe.webhook_secret)
        yield http, stripe


async def listed(http: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def test_one_off_payment_from_intent_to_payment_processed(
    settings: Settings,
    clean_db: AsyncEngine,
    localstripe: LocalStripe,
) -> None:
    s = browser_over_http(payment_settings(settings, "flow-pi", localstripe.base_url))
    async with whole_platform(s, clean_db, localstripe) as (http, stripe):
        user = await logged_in(http)
        # A browser's cookie write must be JSON even without a body (CSRF, README).
        customer = await http.post(CUSTOMER, headers={"Content-Type": "application/json"})
        assert customer.status_code == 200, customer.text
        intent = await http.post(INTENT, json={"amount": 2500, "currency": "usd"})
        assert intent.status_code == 200, intent.text
        intent_id = intent.json()["payment_intent_id"]
        assert (await listed(http, "/api/v1/payments"))[0]["status"] == "requires_payment_method"

        # What Stripe.js does in the browser with the client secret: a test card, confirm.
        started = time.monotonic()
        await stripe.v1.payment_intents.update_async(
            intent_id, params={"payment_method": "pm_card_visa"}
        )
        confirmed = await stripe.v1.payment_intents.confirm_async(intent_id)
        assert confirmed.status == "succeeded"

        async def shown_succeeded() -> bool:
            return [p["status"] for p in await listed(http, "/api/v1/payments")] == ["succeeded"]

        await wait_until(shown_succeeded, APPLIED_WITHIN_S, "payment shown as succeeded")
        print(
            f"\nconfirm -> GET /api/v1/payments shows succeeded: {time.monotonic() - started:.2f}s"
        )
        await wait_until(lambda: _published(clean_db), 30, "payment.processed published")
        notifications = (await http.get("/api/v1/notifications")).json()["items"]

    assert [n["kind"] for n in notifications if n["kind"] == "payment.succeeded"] == [
        "payment.succeeded"
    ]
    assert await count(clean_db, "stripe_events", "event_type = 'payment_intent.succeeded'") == 1
    processed = await asyncio.to_thread(processed_events_in_kafka, s)
    assert len(processed) == 1, processed
    envelope = processed[0].envelope
    assert envelope["user_id"] == user["id"]
    assert envelope["data"] | {"payment_id": 0} == {
        "payment_id": 0,
        "payment_intent_id": intent_id,
        "amount": 2500,
        "currency": "usd",
        "user_id": user["id"],
        "stripe_event_id": envelope["data"]["stripe_event_id"],
    }
    assert processed[0].key == f"payment_intent:{intent_id}"


async def test_subscription_from_creation_to_its_paid_invoice(
    settings: Settings,
    clean_db: AsyncEngine,
    localstripe: LocalStripe,
) -> None:
    s = browser_over_http(payment_settings(settings, "flow-sub", localstripe.base_url))
    async with whole_platform(s, clean_db, localstripe) as (http, stripe):
        plan = await stripe.v1.plans.create_async(
            params={
                "amount": 1900,
                "currency": "usd",
                "interval": "month",
                "product": {"name": "ConnectIn Pro"},
            }
        )
        user = await logged_in(http)
        created = await http.post(
            SUBSCRIPTION,
            json={"price_id": plan.id, "payment_method": "pm_card_visa"},
        )
        assert created.status_code == 200, created.text
        subscription_id = created.json()["subscription_id"]

        async def invoice_paid() -> bool:
            subs = await listed(http, "/api/v1/payments/subscriptions")
            payments = await listed(http, "/api/v1/payments")
            return [x["status"] for x in subs] == ["active"] and [
                (p["status"], p["amount"]) for p in payments
            ] == [("succeeded", 1900)]

        await wait_until(invoice_paid, APPLIED_WITHIN_S, "subscription active, invoice paid")
        # localstripe sends the subscription's, the invoice's and the intent's events at
        # once, in no particular order; all of them must be in before we count.
        await wait_until(
            lambda: _stored(clean_db, 4), 30, "subscription, invoice and intent events stored"
        )
        await wait_until(lambda: _published(clean_db), 30, "everything published")
        await wait_until(lambda: payments_consumed(clean_db, s), 30, "everything consumed")

    sub_row = await count(
        clean_db, "subscriptions", "subscription_id = :id AND status = 'active'", id=subscription_id
    )
    assert sub_row == 1
    processed = await asyncio.to_thread(processed_events_in_kafka, s)
    assert len(processed) == 1, processed
    assert processed[0].envelope["data"]["user_id"] == user["id"]
    assert processed[0].envelope["data"]["amount"] == 1900
    assert await count(clean_db, "notifications", "kind = 'payment.succeeded'") == 1


async def _published(engine: AsyncEngine) -> bool:
    return await count(engine, "outbox", "event_type = 'payment.processed'") == 1 and (
        await count(engine, "outbox", "published_at IS NULL") == 0
    )


async def _stored(engine: AsyncEngine, at_least: int) -> bool:
    types = (
        "'customer.subscription.created', 'invoice.created', 'invoice.payment_succeeded', "
        "'payment_intent.succeeded'"
    )
    return await count(engine, "stripe_events", f"event_type IN ({types})") >= at_least
