"""Idempotency under concurrency (issue 12), against a real localstripe: the key is
claimed in Postgres with a hash of the request before Stripe is called, so parallel
requests with one key create exactly one Stripe object, the ones whose body differs
get 409, and nothing is duplicated in our tables or the outbox. A claim whose write
failed is released at once; one whose owner died is taken over after its lease."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.payments import claims, intents
from api.payments.idempotency import idempotency_key
from core.settings import Settings
from tests.support.api import api_client, bearer, user_with_token
from tests.support.payments import (
    CUSTOMER,
    INTENT,
    SUBSCRIPTION,
    count,
    payment_rows,
    stripe_client,
)
from tests.support.ports import free_port


@pytest.fixture
def api_settings(ls_settings: Settings) -> Settings:
    return ls_settings


async def stripe_objects(s: Settings) -> dict[str, list[Any]]:
    """Everything localstripe holds: what was really created at "Stripe"."""
    async with stripe_client(s) as stripe:
        return {
            "intents": (await stripe.v1.payment_intents.list_async({"limit": 100})).data,
            "subscriptions": (await stripe.v1.subscriptions.list_async({"limit": 100})).data,
            "customers": (await stripe.v1.customers.list_async({"limit": 100})).data,
        }


def split(
    bodies: list[dict[str, Any]], responses: list[httpx.Response]
) -> tuple[
    list[tuple[dict[str, Any], httpx.Response]], list[tuple[dict[str, Any], httpx.Response]]
]:
    answered = [(b, r) for b, r in zip(bodies, responses, strict=True) if r.status_code == 200]
    refused = [(b, r) for b, r in zip(bodies, responses, strict=True) if r.status_code == 409]
    assert len(answered) + len(refused) == len(bodies), [r.text for r in responses]
    return answered, refused


async def test_parallel_intents_with_one_key_and_two_amounts_make_one_intent(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    """The finding: all 8 got 200 with one intent, so callers who asked for 1000 got a
    1001 intent."""
    _, token = await user_with_token(client)
    headers = {**bearer(token), "Idempotency-Key": "checkout-race"}
    bodies = [{"amount": 1000 + i % 2, "currency": "usd"} for i in range(8)]
    responses = await asyncio.gather(
        *(client.post(INTENT, json=b, headers=headers) for b in bodies)
    )
    answered, refused = split(bodies, responses)

    assert len(answered) == 4 and len(refused) == 4
    won = answered[0][0]["amount"]
    assert {b["amount"] for b, _ in answered} == {won}
    assert {b["amount"] for b, _ in refused} == {2001 - won}
    assert len({r.text for _, r in answered}) == 1  # one answer, given four times
    for _, response in refused:
        assert "Idempotency-Key" in response.json()["detail"]

    created = (await stripe_objects(ls_settings))["intents"]
    assert [(i.id, i.amount) for i in created] == [
        (answered[0][1].json()["payment_intent_id"], won)
    ]
    assert await payment_rows(clean_db) == {
        "payments": 1,
        "subscriptions": 0,
        "stripe_customers": 0,
        "payment events": 1,
    }
    assert await count(clean_db, "payments", "amount = :a", a=won) == 1
    assert await count(clean_db, "idempotency_claims", "result IS NOT NULL") == 1

    # Later, sequentially: the same answer again, and still 409 for the other amount.
    again = await client.post(INTENT, json={"amount": won, "currency": "usd"}, headers=headers)
    assert again.text == answered[0][1].text
    other = await client.post(
        INTENT, json={"amount": 2001 - won, "currency": "usd"}, headers=headers
    )
    assert other.status_code == 409
    assert len((await stripe_objects(ls_settings))["intents"]) == 1


async def test_parallel_subscriptions_with_one_key_and_two_cards_make_one_subscription(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    _, token = await user_with_token(client)
    async with stripe_client(ls_settings) as stripe:
        plan = await stripe.v1.plans.create_async(
            params={
                "amount": 1500,
                "currency": "usd",
                "interval": "month",
                "product": {"name": "ConnectIn Pro"},
            }
        )
        mastercard = await stripe.v1.payment_methods.create_async(
            params={
                "type": "card",
                "card": {
                    "number": "5555555555554444",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "cvc": "123",
                },
            }
        )
    headers = {**bearer(token), "Idempotency-Key": "subscribe-race"}
    cards = ("pm_card_visa", mastercard.id)
    bodies = [{"price_id": plan.id, "payment_method": cards[i % 2]} for i in range(8)]
    responses = await asyncio.gather(
        *(client.post(SUBSCRIPTION, json=b, headers=headers) for b in bodies)
    )
    answered, refused = split(bodies, responses)

    assert len(answered) == 4 and len(refused) == 4
    assert len({b["payment_method"] for b, _ in answered}) == 1
    assert len({r.json()["subscription_id"] for _, r in answered}) == 1
    objects = await stripe_objects(ls_settings)
    assert [s.id for s in objects["subscriptions"]] == [answered[0][1].json()["subscription_id"]]
    assert len(objects["customers"]) == 1
    assert await payment_rows(clean_db) == {
        "payments": 0,
        "subscriptions": 1,
        "stripe_customers": 1,
        # payment.customer_created and payment.subscription_created, once each
        "payment events": 2,
    }


async def test_parallel_create_customer_calls_make_one_customer(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    _, token = await user_with_token(client)
    responses = await asyncio.gather(
        *(client.post(CUSTOMER, headers=bearer(token)) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["customer_id"] for r in responses}) == 1
    assert len((await stripe_objects(ls_settings))["customers"]) == 1
    assert await count(clean_db, "stripe_customers") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.customer_created'") == 1


async def test_a_failed_stripe_call_releases_the_claim_so_the_retry_goes_through(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    _, token = await user_with_token(client)
    headers = {**bearer(token), "Idempotency-Key": "checkout-retry"}
    body = {"amount": 1200, "currency": "eur"}
    unreachable = replace(
        ls_settings, stripe=replace(ls_settings.stripe, api_base=f"http://127.0.0.1:{free_port()}")
    )
    async with api_client(unreachable) as down:
        failed = await down.post(INTENT, json=body, headers=headers)
    assert failed.status_code == 502, failed.text
    assert await count(clean_db, "idempotency_claims") == 0
    assert (await payment_rows(clean_db))["payments"] == 0

    retry = await client.post(INTENT, json=body, headers=headers)
    assert retry.status_code == 200, retry.text
    assert len((await stripe_objects(ls_settings))["intents"]) == 1
    assert await count(clean_db, "payments") == 1


async def test_a_declined_card_does_not_block_the_retry_with_another_card(
    client: httpx.AsyncClient, clean_db: AsyncEngine, ls_settings: Settings
) -> None:
    _, token = await user_with_token(client)
    async with stripe_client(ls_settings) as stripe:
        plan = await stripe.v1.plans.create_async(
            params={"amount": 900, "currency": "usd", "interval": "month", "product": {"name": "P"}}
        )
    headers = {**bearer(token), "Idempotency-Key": "subscribe-after-decline"}
    declined = await client.post(
        SUBSCRIPTION,
        json={"price_id": plan.id, "payment_method": "pm_card_visa_chargeDeclined"},
        headers=headers,
    )
    assert declined.status_code == 402, declined.text
    assert await count(clean_db, "subscriptions") == 0
    assert await count(clean_db, "idempotency_claims", "result IS NULL") == 0
    good = await client.post(
        SUBSCRIPTION, json={"price_id": plan.id, "payment_method": "pm_card_visa"}, headers=headers
    )
    assert good.status_code == 200, good.text
    assert await count(clean_db, "subscriptions") == 1


async def _claim_row(engine: AsyncEngine, key: str, digest: str, age: timedelta) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_claims (key, operation, request_hash, owner, claimed_at) "
                "VALUES (:key, :op, :hash, gen_random_uuid(), now() - CAST(:age AS interval))"
            ),
            {"key": key, "op": intents.OPERATION, "hash": digest, "age": age},
        )


async def test_an_in_flight_claim_answers_409_in_progress_and_an_abandoned_one_is_taken_over(
    client: httpx.AsyncClient,
    clean_db: AsyncEngine,
    ls_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waiting the production 30 s proves nothing more than waiting a moment.
    monkeypatch.setattr(claims, "WAIT_S", 0.3)
    user, token = await user_with_token(client)
    body = {"amount": 700, "currency": "usd"}
    digest = claims.request_hash(body)

    busy = idempotency_key(intents.OPERATION, user["id"], "busy", body).value
    await _claim_row(clean_db, busy, digest, timedelta(seconds=1))
    headers = {**bearer(token), "Idempotency-Key": "busy"}
    waiting = await client.post(INTENT, json=body, headers=headers)
    assert waiting.status_code == 409, waiting.text
    assert "in progress" in waiting.json()["detail"]
    assert waiting.headers["retry-after"] == "1"
    mismatch = await client.post(INTENT, json={**body, "amount": 701}, headers=headers)
    assert "already used with another request" in mismatch.json()["detail"]

    # The owner died (kill -9) more than a lease ago: the next same request takes over.
    dead = idempotency_key(intents.OPERATION, user["id"], "dead", body).value
    await _claim_row(clean_db, dead, digest, claims.LEASE + timedelta(seconds=1))
    taken = await client.post(
        INTENT, json=body, headers={**bearer(token), "Idempotency-Key": "dead"}
    )
    assert taken.status_code == 200, taken.text
    assert (
        await count(clean_db, "idempotency_claims", "key = :k AND result IS NOT NULL", k=dead) == 1
    )
    assert len((await stripe_objects(ls_settings))["intents"]) == 1
    assert await count(clean_db, "payments") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.intent_created'") == 1
