"""The webhook: only Stripe-signed, well-formed, recent deliveries are stored, each
Stripe event once (stripe_events row + one outbox row, in one transaction), however
many times and however concurrently it is delivered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.payments.webhook import WEBHOOK_MAX_BYTES
from core.settings import Settings
from tests.support.api import api_client, register
from tests.support.consumers import wait_until
from tests.support.payments import (
    WEBHOOK_PATH,
    count,
    deliver,
    event_body,
    intent_object,
    payment_settings,
    payments_consumed,
    processed_events_in_kafka,
    running_pipeline,
    signature,
    signed_headers,
    status_of,
)

OLD_SECRET = "whsec_previous_secret_being_rotated_out"


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]


def _valid() -> bytes:
    return event_body(
        "payment_intent.created",
        intent_object("pi_matrix", "requires_payment_method", user_id=1),
        created=int(time.time()),
    )


def _two_v1(secret: str, first: str, second: str) -> Delivery:
    body, t = _valid(), int(time.time())
    header = f"t={t},v1={signature(first, t, body)},v1={signature(second, t, body)}"
    return Delivery(body, {"Stripe-Signature": header})


def _tampered(secret: str) -> Delivery:
    body = _valid()
    return Delivery(body.replace(b'"amount": 2500', b'"amount": 1'), signed_headers(secret, body))


def _signed(body: bytes) -> Callable[[str], Delivery]:
    return lambda secret: Delivery(body, signed_headers(secret, body))


def _oversize() -> bytes:
    doc = json.loads(_valid())
    doc["data"]["object"]["description"] = "x" * WEBHOOK_MAX_BYTES
    return json.dumps(doc).encode()


def _with_nul() -> bytes:
    doc = json.loads(_valid())
    doc["data"]["object"]["description"] = "a\x00b"
    return json.dumps(doc).encode()


# name -> (delivery for the endpoint's secret, expected status, rows stored)
MATRIX: dict[str, tuple[Callable[[str], Delivery], int, int]] = {
    "valid": (lambda secret: Delivery(b := _valid(), signed_headers(secret, b)), 200, 1),
    "tampered body": (_tampered, 400, 0),
    "wrong secret": (lambda _: Delivery(b := _valid(), signed_headers("whsec_wrong", b)), 400, 0),
    "no header": (lambda _: Delivery(_valid(), {}), 400, 0),
    "v0 only": (
        lambda secret: Delivery(b := _valid(), signed_headers(secret, b, scheme="v0")),
        400,
        0,
    ),
    "timestamp older than tolerance": (
        lambda secret: Delivery(
            b := _valid(), signed_headers(secret, b, timestamp=int(time.time()) - 301)
        ),
        400,
        0,
    ),
    "two v1 during rotation, new first": (lambda s: _two_v1(s, s, OLD_SECRET), 200, 1),
    "two v1 during rotation, old first": (lambda s: _two_v1(s, OLD_SECRET, s), 200, 1),
    "two v1, neither ours": (lambda _: _two_v1("", OLD_SECRET, "whsec_other"), 400, 0),
    "garbled header": (lambda _: Delivery(_valid(), {"Stripe-Signature": "t=soon,v1=zz"}), 400, 0),
    "malformed JSON, validly signed": (_signed(b'{"id": "evt_1", "object": "event",'), 400, 0),
    "JSON array, validly signed": (_signed(b"[1, 2, 3]"), 400, 0),
    "v2 thin event, validly signed": (
        _signed(b'{"id": "evt_1", "object": "v2.core.event", "type": "x", "created": 1}'),
        400,
        0,
    ),
    "not UTF-8, validly signed": (_signed(b'{"id": "\xff\xfe"}'), 400, 0),
    "NUL in a string, validly signed": (_signed(_with_nul()), 400, 0),
    "oversize body, validly signed": (_signed(_oversize()), 400, 0),
}


@pytest.mark.parametrize("case", list(MATRIX))
async def test_signature_matrix(settings: Settings, clean_db: AsyncEngine, case: str) -> None:
    make, expected_status, expected_rows = MATRIX[case]
    s = payment_settings(settings, "sig")
    delivery = make(s.stripe.webhook_secret)
    async with api_client(s) as client:
        response = await client.post(WEBHOOK_PATH, content=delivery.body, headers=delivery.headers)
    assert response.status_code == expected_status, response.text
    if expected_status == 400:
        body = response.json()
        assert body["error"] == "bad_request" and body["detail"], body
    assert await count(clean_db, "stripe_events") == expected_rows
    assert await count(clean_db, "outbox") == expected_rows
    if expected_rows:
        assert await count(clean_db, "outbox", "event_type = 'stripe.payment_intent.created'") == 1


async def test_a_repeated_event_answers_2xx_and_writes_nothing(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = payment_settings(settings, "repeat")
    body = _valid()
    async with api_client(s) as client:
        first = await deliver(client, s, body)
        # Stripe's retry: same event, signed anew a little later.
        again = await deliver(client, s, body, timestamp=int(time.time()) + 5)
    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert await count(clean_db, "stripe_events") == 1
    assert await count(clean_db, "outbox") == 1


async def test_same_event_50_times_concurrently_is_stored_and_applied_once(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = payment_settings(settings, "dup50")
    async with api_client(s) as client:
        user = await register(client)
        intent_id = f"pi_dup_{user['id']}"
        body = event_body(
            "payment_intent.succeeded",
            intent_object(intent_id, "succeeded", user_id=user["id"]),
            created=int(time.time()),
        )
        started = time.monotonic()
        responses = await asyncio.gather(*(deliver(client, s, body) for _ in range(50)))
        elapsed = time.monotonic() - started
    print(f"\n50 concurrent deliveries answered in {elapsed * 1000:.0f} ms")
    assert {r.status_code for r in responses} == {200}
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert await count(clean_db, "stripe_events") == 1
    assert await count(clean_db, "outbox", "event_type LIKE 'stripe.%'") == 1

    async with running_pipeline(s, clean_db):
        await wait_until(
            lambda: _is(clean_db, intent_id, "succeeded"), 60, "payment applied by the consumer"
        )
        # The stored event and the payment.processed it caused, both consumed once.
        await wait_until(
            lambda: payments_consumed(clean_db, s, events=2),
            30,
            "payment.processed published and consumed",
        )
    assert await count(clean_db, "payments") == 1
    assert await count(clean_db, "notifications", "kind = 'payment.succeeded'") == 1
    assert await count(clean_db, "outbox", "event_type = 'payment.processed'") == 1
    processed = await asyncio.to_thread(processed_events_in_kafka, s)
    assert [p.envelope["data"]["payment_intent_id"] for p in processed] == [intent_id]


async def _is(engine: AsyncEngine, intent_id: str, status: str) -> bool:
    return await status_of(engine, "payments", "payment_intent_id", intent_id) == status
