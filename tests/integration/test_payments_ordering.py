"""Stripe does not order its events: a stale event never moves a payment or a
subscription backwards. First the rule itself, then deliveries in reverse (and
shuffled, and repeated) through the real path: signed webhook -> API -> outbox ->
relay -> Kafka -> payment consumer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from core.stripe.lifecycle import PAYMENT, SUBSCRIPTION
from tests.support.api import api_client, register
from tests.support.consumers import wait_until
from tests.support.payments import (
    count,
    deliver,
    event_body,
    intent_object,
    payment_settings,
    payments_consumed,
    processed_events_in_kafka,
    running_pipeline,
    subscription_object,
)

T = 1_790_000_000

SUPERSEDES = [
    # current, current created, new, new created, applies
    ("requires_payment_method", T, "processing", T + 1, True),
    ("processing", T + 1, "requires_payment_method", T, False),  # stale
    ("processing", T, "requires_payment_method", T + 1, True),  # failed later: real move
    ("succeeded", T, "processing", T + 5, False),  # finished is final
    ("succeeded", T, "canceled", T + 5, False),
    ("requires_action", T + 9, "succeeded", T, True),  # finished wins, however late
    ("requires_payment_method", T, "succeeded", T, True),  # same second: further along
    ("succeeded", T, "requires_payment_method", T, False),
    ("processing", T, "requires_action", T, False),
    ("requires_payment_method", None, "requires_payment_method", T, True),  # API's row
    ("processing", None, "requires_payment_method", T, False),
    ("succeeded", None, "succeeded", T, True),  # first event confirming the API's row
]


@pytest.mark.parametrize(("current", "current_at", "new", "new_at", "applies"), SUPERSEDES)
def test_payment_precedence(
    current: str, current_at: int | None, new: str, new_at: int, applies: bool
) -> None:
    assert PAYMENT.supersedes(current, current_at, new, new_at) is applies


def test_subscription_precedence() -> None:
    assert SUBSCRIPTION.supersedes("incomplete", T, "active", T)
    assert not SUBSCRIPTION.supersedes("active", T + 1, "incomplete", T)
    assert SUBSCRIPTION.supersedes("active", T, "past_due", T + 1)
    assert SUBSCRIPTION.supersedes("past_due", T, "active", T + 1)  # paid after all
    assert not SUBSCRIPTION.supersedes("past_due", T + 1, "active", T)
    assert not SUBSCRIPTION.supersedes("canceled", T, "active", T + 9)
    assert SUBSCRIPTION.supersedes("active", T + 9, "canceled", T)


Delivery = tuple[str, dict[str, Any], int]  # (event type, object, created)


def intent_history(intent_id: str, user_id: int, *statuses: str) -> list[Delivery]:
    """One event per status, a second apart, named as Stripe names them."""
    names = {
        "requires_payment_method": "payment_intent.payment_failed",
        "processing": "payment_intent.processing",
        "requires_action": "payment_intent.requires_action",
        "succeeded": "payment_intent.succeeded",
    }
    t0 = int(time.time()) - 100
    history = [("payment_intent.created", "requires_payment_method")]
    history += [(names[s], s) for s in statuses]
    return [
        (name, intent_object(intent_id, status, user_id=user_id), t0 + i)
        for i, (name, status) in enumerate(history)
    ]


def subscription_history(sub_id: str, user_id: int, *statuses: str) -> list[Delivery]:
    t0 = int(time.time()) - 100
    history = [("customer.subscription.created", "incomplete")]
    history += [
        ("customer.subscription.deleted" if s == "canceled" else "customer.subscription.updated", s)
        for s in statuses
    ]
    return [
        (name, subscription_object(sub_id, status, user_id=user_id), t0 + i)
        for i, (name, status) in enumerate(history)
    ]


async def test_reversed_and_repeated_deliveries_never_move_state_backwards(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = payment_settings(settings, "order")
    async with api_client(s) as client:
        user_id = (await register(client))["id"]
        now = int(time.time())
        paid = intent_history("pi_paid", user_id, "processing", "succeeded")
        # Declined once, then paid with another card.
        retried = intent_history(
            "pi_retried", user_id, "processing", "requires_payment_method", "succeeded"
        )
        failed = intent_history("pi_failed", user_id, "processing", "requires_payment_method")
        tie = [
            ("payment_intent.succeeded", "succeeded"),
            ("payment_intent.created", "requires_payment_method"),
        ]
        same_second = [
            (name, intent_object("pi_tie", status, user_id=user_id), now) for name, status in tie
        ]
        canceled = subscription_history("sub_canceled", user_id, "active", "past_due", "canceled")
        past_due = subscription_history("sub_past_due", user_id, "active", "past_due")
        first, stale_update = subscription_history("sub_by_invoice", user_id, "incomplete")
        invoice = {
            "id": "in_1",
            "object": "invoice",
            "subscription": "sub_by_invoice",
            "payment_intent": "pi_invoice",
            "customer": "cus_unknown",
            "amount_due": 1900,
            "amount_paid": 1900,
            "currency": "usd",
            "metadata": {"user_id": str(user_id)},
        }
        paid_by_invoice = [
            first,
            ("invoice.payment_succeeded", invoice, now - 50),
            stale_update,  # an "incomplete" snapshot from before the payment
        ]
        deliveries: list[Delivery] = [
            *reversed(paid),
            *reversed(retried),
            *failed,  # in order: the later failure is a real move back
            *same_second,
            *reversed(canceled),
            *reversed(past_due),
            *paid_by_invoice,
            # Stale events again, as new deliveries, after everything else.
            *paid[:2],
            *canceled[:2],
        ]
        for event_type, obj, created in deliveries:
            body = event_body(event_type, obj, created=created)
            response = await deliver(client, s, body)
            assert response.status_code == 200, response.text
    assert await count(clean_db, "stripe_events") == len(deliveries)

    async with running_pipeline(s, clean_db):
        await wait_until(lambda: payments_consumed(clean_db, s), 60, "every event consumed")

    assert await _states(clean_db, "payments", "payment_intent_id") == {
        "pi_paid": "succeeded",
        "pi_retried": "succeeded",
        "pi_failed": "requires_payment_method",
        "pi_tie": "succeeded",
        "pi_invoice": "succeeded",
    }
    assert await _states(clean_db, "subscriptions", "subscription_id") == {
        "sub_canceled": "canceled",
        "sub_past_due": "past_due",
        "sub_by_invoice": "active",
    }
    processed = await asyncio.to_thread(processed_events_in_kafka, s)
    assert sorted(p.envelope["data"]["payment_intent_id"] for p in processed) == [
        "pi_invoice",
        "pi_paid",
        "pi_retried",
        "pi_tie",
    ]
    assert await count(clean_db, "notifications", "kind = 'payment.succeeded'") == 4


async def _states(engine: AsyncEngine, table: str, column: str) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT {column}, status FROM {table}"))
        return {row[0]: row[1] for row in rows}
