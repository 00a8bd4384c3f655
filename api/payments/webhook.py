"""Verifying and reading a Stripe webhook delivery, before anything is stored.

The signature is checked by the stripe package on the exact bytes received (v1
scheme only; any of several v1 values may match, which is how Stripe signs during a
secret rotation; the timestamp must be within the tolerance). Only then is the body
parsed, and it must be a v1 snapshot event (`core.stripe.event.StripeSnapshotEvent`,
the contract the payment consumer decodes) that Postgres can store as jsonb.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import stripe

from core.settings import StripeSettings
from core.stripe.event import ReceivedEvent, StripeSnapshotEvent

# Stripe's snapshot events are a few kilobytes; invoices with many lines stay far below
# this. Anything larger is refused before it is parsed or stored.
WEBHOOK_MAX_BYTES = 512 * 1024


class WebhookRejected(ValueError):
    """The delivery is not a verifiable Stripe event: answered 400, nothing stored."""


def verify(raw: bytes, signature: str | None, settings: StripeSettings) -> ReceivedEvent:
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


def parse(raw: bytes) -> ReceivedEvent:
    try:
        doc = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WebhookRejected("body is not a JSON object")
    if doc.get("object") != "event":
        # v2 "thin" events (object "v2.core.event") carry no snapshot to store.
        raise WebhookRejected('body is not a Stripe v1 event (object must be "event")')
    try:
        event = msgspec.convert(doc, StripeSnapshotEvent)
    except msgspec.ValidationError as exc:
        raise WebhookRejected(f"not a Stripe event: {exc}") from None
    if _holds_nul(doc):
        raise WebhookRejected("event holds a NUL character, which Postgres cannot store")
    return ReceivedEvent(event=event, payload=doc)


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
