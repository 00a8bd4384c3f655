"""Reading Stripe's objects and events: the shapes of both API versions, the keys the
webhook orders events under, and a clear error for what cannot be read."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from api.payments.webhook import WebhookRejected, parse
from core.events.errors import InvalidEvent
from core.settings import TopicSettings
from core.stripe.event import StripeSnapshotEvent
from core.stripe.objects import (
    Invoice,
    PaymentIntent,
    Subscription,
    decode,
    metadata_user_id,
)
from core.tables import MAX_BIGINT


def _event(type_: str, obj: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "object": "event",
        "type": type_,
        "created": 1_790_000_000,
        "livemode": False,
        "api_version": "2025-03-31.basil",
        "data": {"object": obj},
        **top,
    }


INTENT = {
    "id": "pi_1",
    "object": "payment_intent",
    "amount": 500,
    "currency": "USD",
    "status": "succeeded",
    "customer": {"id": "cus_1", "object": "customer"},
    "metadata": {"user_id": "7"},
}


def test_a_payment_intent_reads_its_fields() -> None:
    intent = decode(INTENT, PaymentIntent, "payment intent")
    assert (intent.id, intent.amount, intent.currency, intent.status) == (
        "pi_1",
        500,
        "USD",
        "succeeded",
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"amount": -1}, "`$.amount`"),
        ({"amount": True}, "`$.amount`"),
        ({"amount": MAX_BIGINT + 1}, "`$.amount`"),
        ({"currency": "dollars"}, "`$.currency`"),
        ({"status": ""}, "`$.status`"),
        ({"status": "s" * 65}, "`$.status`"),
        ({"id": None}, "`$.id`"),
    ],
)
def test_a_payment_intent_that_does_not_fit_is_an_invalid_event(
    change: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidEvent, match=r"^payment intent: ") as raised:
        decode({**INTENT, **change}, PaymentIntent, "payment intent")
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("sub", "price"),
    [
        ({"items": {"data": [{"price": {"id": "price_1"}, "plan": "plan_0"}]}}, "price_1"),
        ({"items": {"data": [{"plan": {"id": "plan_2"}}]}}, "plan_2"),
        ({"items": {"data": []}, "plan": "plan_3"}, "plan_3"),
        ({}, None),
    ],
)
def test_a_subscriptions_price(sub: dict[str, Any], price: str | None) -> None:
    read = decode({"id": "sub_1", "status": "active", **sub}, Subscription, "subscription")
    assert read.price_id() == price


def test_an_invoice_in_both_api_versions() -> None:
    before = decode({"subscription": "sub_1", "payment_intent": "pi_1"}, Invoice, "invoice")
    since = decode(
        {
            "parent": {"subscription_details": {"subscription": {"id": "sub_1"}}},
            "payments": {"data": [{"payment": {"payment_intent": "pi_1"}}]},
        },
        Invoice,
        "invoice",
    )
    for invoice in (before, since):
        assert (invoice.subscription_id(), invoice.payment_intent_id()) == ("sub_1", "pi_1")
    assert decode({}, Invoice, "invoice").payment_intent_id() is None


@pytest.mark.parametrize(
    ("type_", "obj", "aggregate"),
    [
        ("payment_intent.succeeded", INTENT, ("payment_intent", "pi_1")),
        (
            "invoice.paid",
            {"id": "in_1", "object": "invoice", "subscription": "sub_1"},
            ("subscription", "sub_1"),
        ),
        ("invoice.paid", {"id": "in_2", "object": "invoice"}, ("invoice", "in_2")),
        # A malformed link falls back to the invoice itself rather than failing.
        ("invoice.paid", {"id": "in_3", "object": "invoice", "parent": 5}, ("invoice", "in_3")),
        ("balance.available", {"object": "balance"}, ("stripe_event", "evt_1")),
        ("x.y", {"id": "o_1", "object": "o" * 65}, ("stripe_event", "evt_1")),
    ],
)
def test_the_key_a_stripe_event_is_ordered_under(
    type_: str, obj: dict[str, Any], aggregate: tuple[str, str]
) -> None:
    received = parse(json.dumps(_event(type_, obj)).encode())
    assert received.event.aggregate() == aggregate


def test_a_received_event_is_enqueued_whole() -> None:
    doc = _event("payment_intent.succeeded", INTENT, request={"id": None})
    received = parse(json.dumps(doc).encode())
    new = received.new_event(TopicSettings())
    assert new.data == doc
    assert new.user_id == 7
    assert new.event_type == "stripe.payment_intent.succeeded"
    assert new.event_id == received.event.outbox_event_id


@pytest.mark.parametrize(
    "doc",
    [
        _event("payment_intent.created", INTENT, created=True),
        _event("payment_intent.created", INTENT, created=-1),
        _event("payment_intent.created", INTENT, id=""),
        _event("t" * 249, INTENT),
        {**_event("payment_intent.created", INTENT), "data": {"object": []}},
        {**_event("payment_intent.created", INTENT), "object": "v2.core.event"},
        _event("payment_intent.created", {**INTENT, "description": "a\x00b"}),
    ],
)
def test_a_delivery_that_is_no_storable_event_is_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(WebhookRejected):
        parse(json.dumps(doc).encode())


def test_a_stored_event_decodes_for_the_consumer() -> None:
    event = msgspec.convert(_event("invoice.paid", {"id": "in_1"}), StripeSnapshotEvent)
    assert StripeSnapshotEvent.matches("stripe.invoice.paid")
    assert not StripeSnapshotEvent.matches("payment.processed")
    assert event.data.object == {"id": "in_1"}


@pytest.mark.parametrize(
    ("metadata", "user"),
    [
        ({"user_id": "42"}, 42),
        ({"user_id": 42}, None),
        ({"user_id": "0"}, None),
        ({"user_id": "-1"}, None),
        ({"user_id": str(MAX_BIGINT + 1)}, None),
        ({"user_id": "٤٢"}, None),
        (None, None),
        (["user_id"], None),
    ],
)
def test_the_user_our_metadata_names(metadata: object, user: int | None) -> None:
    assert metadata_user_id(metadata) == user
