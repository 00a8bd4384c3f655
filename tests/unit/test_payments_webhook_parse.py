"""What a Stripe delivery must be before anything is stored (api/payments/webhook.py,
architecture invariant 5): signed with the endpoint secret within the tolerance, a v1
snapshot event Postgres can hold; and the aggregate and user each event is filed
under. Bad input is a WebhookRejected with the reason, never another exception."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest

from api.payments.webhook import (
    MAX_BIGINT,
    MAX_ID_CHARS,
    MAX_TYPE_CHARS,
    STRIPE_EVENT_NAMESPACE,
    VerifiedEvent,
    WebhookRejected,
    aggregate_of,
    invoice_subscription,
    parse,
    user_hint,
    verify,
)
from core.settings import StripeSettings

SECRET = "whsec_unit_test_secret"
STRIPE = StripeSettings(webhook_secret=SECRET, webhook_tolerance_s=300)


def event(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "evt_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1_790_000_000,
        "livemode": False,
        "data": {"object": {"id": "pi_1", "object": "payment_intent"}},
    }
    doc.update(overrides)
    return doc


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_a_v1_snapshot_event_is_read() -> None:
    verified = parse(raw(event(livemode=True)))
    assert verified.id == "evt_1"
    assert verified.type == "payment_intent.succeeded"
    assert verified.created == 1_790_000_000
    assert verified.livemode is True
    assert verified.object == {"id": "pi_1", "object": "payment_intent"}
    assert verified.payload == event(livemode=True)


def test_livemode_is_true_only_when_stripe_says_true() -> None:
    assert parse(raw(event(livemode="yes"))).livemode is False
    doc = event()
    del doc["livemode"]
    assert parse(raw(doc)).livemode is False


def test_the_outbox_event_id_is_derived_from_stripes_id() -> None:
    """The same Stripe event can never be enqueued twice, whatever path it takes."""
    first, again = parse(raw(event())), parse(raw(event(created=1)))
    assert first.outbox_event_id == again.outbox_event_id
    assert first.outbox_event_id == uuid.uuid5(STRIPE_EVENT_NAMESPACE, "evt_1")
    assert parse(raw(event(id="evt_2"))).outbox_event_id != first.outbox_event_id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"id": NaN}', "not valid JSON"),
        (b'{"id": Infinity}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"event"', "not a JSON object"),
        (raw(event(object="v2.core.event")), "not a Stripe v1 event"),
        (raw({k: v for k, v in event().items() if k != "object"}), "not a Stripe v1 event"),
        (raw(event(id="")), "event id"),
        (raw(event(id=7)), "event id"),
        (raw(event(id="e" * (MAX_ID_CHARS + 1))), "event id"),
        (raw(event(type="")), "event type"),
        (raw(event(type=None)), "event type"),
        (raw(event(type="t" * (MAX_TYPE_CHARS + 1))), "event type"),
        (raw(event(created="1790000000")), "unix timestamp"),
        (raw(event(created=True)), "unix timestamp"),
        (raw(event(created=1.5)), "unix timestamp"),
        (raw(event(created=-1)), "unix timestamp"),
        (raw(event(created=MAX_BIGINT + 1)), "unix timestamp"),
        (raw(event(data=None)), "data.object"),
        (raw(event(data={})), "data.object"),
        (raw(event(data={"object": "pi_1"})), "data.object"),
        (raw(event(data={"object": {"name": "a\x00b"}})), "NUL"),
        (raw(event(data={"object": {"a\x00": 1}})), "NUL"),
        (raw(event(data={"object": {"deep": [[[{"x": ["\x00"]}]]]}})), "NUL"),
        (raw(event(type="a\x00")), "NUL"),
    ],
)
def test_anything_else_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        parse(body)


def test_the_limits_themselves_are_accepted() -> None:
    verified = parse(
        raw(event(id="e" * MAX_ID_CHARS, type="t" * MAX_TYPE_CHARS, created=MAX_BIGINT))
    )
    assert len(verified.id) == MAX_ID_CHARS
    assert verified.created == MAX_BIGINT
    assert parse(raw(event(created=0))).created == 0


def test_a_signed_delivery_is_verified_and_parsed() -> None:
    body = raw(event())
    assert verify(body, signed(body), STRIPE) == parse(body)


def test_any_matching_v1_signature_is_enough_during_a_secret_rotation() -> None:
    body = raw(event())
    old, new = signed(body, secret="whsec_old"), signed(body)
    header = f"{old},v1={new.split('v1=')[1]}"
    assert verify(body, header, STRIPE).id == "evt_1"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=1,v1=00",
        signed(raw(event()), secret="whsec_other"),
        signed(raw(event()), at=int(time.time()) - 301),
        signed(raw(event())).replace("v1=", "v0="),
    ],
)
def test_an_unverifiable_delivery_is_refused(header: str | None) -> None:
    with pytest.raises(WebhookRejected, match="signature verification failed"):
        verify(raw(event()), header, STRIPE)


def test_a_signature_of_other_bytes_is_refused() -> None:
    body = raw(event())
    with pytest.raises(WebhookRejected, match="signature verification failed"):
        verify(body + b" ", signed(body), STRIPE)


def test_a_signed_body_that_is_not_utf8_is_refused() -> None:
    body = b'{"id": "\xff"}'
    with pytest.raises(WebhookRejected, match="UTF-8"):
        verify(body, signed(body), STRIPE)


def test_a_signed_body_that_is_not_an_event_is_still_refused() -> None:
    body = raw(event(object="v2.core.event"))
    with pytest.raises(WebhookRejected, match="not a Stripe v1 event"):
        verify(body, signed(body), STRIPE)


def verified(event_type: str, obj: dict[str, Any], event_id: str = "evt_9") -> VerifiedEvent:
    return parse(raw(event(id=event_id, type=event_type, data={"object": obj})))


def test_an_object_is_filed_under_its_type_and_id() -> None:
    intent = verified("payment_intent.created", {"id": "pi_7", "object": "payment_intent"})
    assert aggregate_of(intent) == ("payment_intent", "pi_7")


def test_an_invoice_is_filed_under_its_subscription_in_either_api_version() -> None:
    before = {"id": "in_1", "object": "invoice", "subscription": "sub_1"}
    expanded = {"id": "in_1", "object": "invoice", "subscription": {"id": "sub_1"}}
    since = {
        "id": "in_1",
        "object": "invoice",
        "parent": {"subscription_details": {"subscription": "sub_1"}},
    }
    for obj in (before, expanded, since):
        assert invoice_subscription(obj) == "sub_1"
        assert aggregate_of(verified("invoice.paid", obj)) == ("subscription", "sub_1")


def test_an_invoice_without_a_subscription_is_filed_under_itself() -> None:
    for obj in (
        {"id": "in_2", "object": "invoice"},
        {"id": "in_2", "object": "invoice", "subscription": ""},
        {"id": "in_2", "object": "invoice", "parent": None},
        {"id": "in_2", "object": "invoice", "parent": {"subscription_details": "x"}},
    ):
        assert invoice_subscription(obj) is None
        assert aggregate_of(verified("invoice.paid", obj)) == ("invoice", "in_2")


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"id": "pi_1"},
        {"object": "payment_intent"},
        {"id": "", "object": "payment_intent"},
        {"id": 5, "object": "payment_intent"},
        {"id": "pi_1", "object": ""},
        {"id": "pi_1", "object": "o" * 65},
        {"id": "pi_1", "object": ["payment_intent"]},
    ],
)
def test_an_object_without_a_usable_type_and_id_is_filed_under_the_event(
    obj: dict[str, Any],
) -> None:
    assert aggregate_of(verified("charge.updated", obj, "evt_x")) == ("stripe_event", "evt_x")


@pytest.mark.parametrize(
    ("metadata", "user"),
    [
        ({"user_id": "42"}, 42),
        ({"user_id": str(MAX_BIGINT)}, MAX_BIGINT),
        ({"user_id": str(MAX_BIGINT + 1)}, None),
        ({"user_id": "0"}, None),
        ({"user_id": "-1"}, None),
        ({"user_id": "4 2"}, None),
        ({"user_id": "٤٢"}, None),  # Arabic-Indic digits: isdigit() but not ours
        ({"user_id": 42}, None),
        ({"user_id": ""}, None),
        ({}, None),
        (None, None),
        ("user_id=42", None),
    ],
)
def test_the_user_hint_is_only_a_positive_ascii_bigint(metadata: Any, user: int | None) -> None:
    obj = {"id": "pi_1", "object": "payment_intent", "metadata": metadata}
    assert user_hint(verified("payment_intent.succeeded", obj)) == user
