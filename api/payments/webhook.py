"""Verifying and reading a Stripe webhook delivery, before anything is stored.

The signature is checked by the stripe package on the exact bytes received (v1
scheme only; any of several v1 values may match, which is how Stripe signs during a
secret rotation; the timestamp must be within the tolerance). Only then is the body
parsed, and it must be a v1 snapshot event Postgres can store as jsonb.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import stripe

from core.settings import StripeSettings

# Stripe's snapshot events are a few kilobytes; invoices with many lines stay far below
# this. Anything larger is refused before it is parsed or stored.
WEBHOOK_MAX_BYTES = 512 * 1024
# Column widths (stripe_events.event_type and outbox.event_type hold "stripe.<type>").
MAX_ID_CHARS = 255
MAX_TYPE_CHARS = 255 - len("stripe.")
MAX_BIGINT = 2**63 - 1
MAX_AGGREGATE_TYPE_CHARS = 64  # outbox.aggregate_type
# The outbox event id of a Stripe event is derived from Stripe's id, so the same Stripe
# event can never be enqueued twice (outbox.event_id is unique) whatever path it takes.
STRIPE_EVENT_NAMESPACE = uuid.UUID("5d0c1e9a-4f7b-4c1e-9a53-2b8f0c6d7e11")


class WebhookRejected(ValueError):
    """The delivery is not a verifiable Stripe event: answered 400, nothing stored."""


@dataclass(frozen=True)
class VerifiedEvent:
    id: str
    type: str
    created: int
    livemode: bool
    payload: dict[str, Any]

    @property
    def object(self) -> dict[str, Any]:
        data = self.payload["data"]
        obj: dict[str, Any] = data["object"]
        return obj

    @property
    def outbox_event_id(self) -> uuid.UUID:
        return uuid.uuid5(STRIPE_EVENT_NAMESPACE, self.id)


def verify(raw: bytes, signature: str | None, settings: StripeSettings) -> VerifiedEvent:
    try:
        stripe.WebhookSignature.verify_header(
            raw, signature, settings.webhook_secret, settings.webhook_tolerance_s
        )
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(f"signature verification failed: {exc.user_message}") from None
    except UnicodeDecodeError:
        # The package decodes the body before hashing; Stripe only sends UTF-8 JSON.
        raise WebhookRejected("body is not UTF-8") from None
    return parse(raw)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(raw: bytes) -> VerifiedEvent:
    try:
        doc = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WebhookRejected("body is not a JSON object")
    if doc.get("object") != "event":
        # v2 "thin" events (object "v2.core.event") carry no snapshot to store.
        raise WebhookRejected('body is not a Stripe v1 event (object must be "event")')
    event_id, event_type, created = doc.get("id"), doc.get("type"), doc.get("created")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_CHARS:
        raise WebhookRejected("event id missing or too long")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_CHARS:
        raise WebhookRejected("event type missing or too long")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created <= MAX_BIGINT:
        raise WebhookRejected("event created must be a unix timestamp")
    data = doc.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected("event data.object missing")
    if _holds_nul(doc):
        raise WebhookRejected("event holds a NUL character, which Postgres cannot store")
    return VerifiedEvent(
        id=event_id,
        type=event_type,
        created=created,
        livemode=doc.get("livemode") is True,
        payload=doc,
    )


def _holds_nul(doc: Any) -> bool:
    """Any NUL in a key or string (jsonb rejects them). Iterative: nesting is unbounded."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _id_of(value: Any) -> str | None:
    """An id field that Stripe sends either as the id or as the expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """The invoice's subscription: `subscription` before API version 2025-03-31,
    `parent.subscription_details.subscription` since."""
    direct = _id_of(invoice.get("subscription"))
    if direct is not None:
        return direct
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    return _id_of(details.get("subscription")) if isinstance(details, dict) else None


def aggregate_of(event: VerifiedEvent) -> tuple[str, str]:
    """The aggregate an event is ordered under (outbox key, shard, Kafka partition).

    A payment intent's events share the key of the API's `payment.intent_created` and
    the consumer's `payment.processed`; a subscription's invoices share their
    subscription's key, so the payment consumer sees them in the order we received them.
    """
    obj = event.object
    if event.type.startswith("invoice."):
        subscription = invoice_subscription(obj)
        if subscription is not None:
            return "subscription", subscription
    object_type, object_id = obj.get("object"), _id_of(obj)
    if (
        isinstance(object_type, str)
        and 0 < len(object_type) <= MAX_AGGREGATE_TYPE_CHARS
        and object_id is not None
    ):
        return object_type, object_id
    return "stripe_event", event.id


def user_hint(event: VerifiedEvent) -> int | None:
    """Our user id when the object carries it in metadata (we set it on everything we
    create); the consumer resolves users authoritatively."""
    metadata = event.object.get("metadata")
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_BIGINT:
        return int(raw)
    return None
