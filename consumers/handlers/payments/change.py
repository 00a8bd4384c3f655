"""A payment state an event reports: an intent's own event, or an invoice's word about
the intent collecting it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PaymentChange:
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    created: int
    customer_id: str | None
    metadata: Any
    stripe_event_id: str
