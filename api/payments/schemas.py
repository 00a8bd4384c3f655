"""Request and response bodies of the payment routes. Field names follow the original
integration, so its frontend code works unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from api.bodies import anchored

MAX_MINOR_UNITS = 99_999_999  # Stripe's own ceiling on `amount` (8 digits)

Amount = Annotated[int, Meta(ge=1, le=MAX_MINOR_UNITS, description="minor units (cents)")]
Currency = Annotated[str, Meta(pattern=anchored("[A-Za-z]{3}"), description="ISO 4217, e.g. usd")]
# Prices (`price_…`) and legacy plans (`plan_…`): the prefix says which field Stripe
# expects, so it is required.
PriceId = Annotated[
    str, Meta(max_length=255, pattern=anchored("(price|plan)_[A-Za-z0-9_-]{1,200}"))
]
PaymentMethodId = Annotated[str, Meta(max_length=255, pattern=anchored("pm_[A-Za-z0-9_]{1,200}"))]


class PaymentIntentIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount
    currency: Currency


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    price_id: PriceId
    # A PaymentMethod the frontend created with Stripe.js; it becomes the customer's
    # default for invoices. Optional when the customer already has a default.
    payment_method: PaymentMethodId | None = None


class CustomerOut(msgspec.Struct):
    customer_id: str


class PaymentIntentOut(msgspec.Struct):
    client_secret: str
    payment_intent_id: str


class SubscriptionCreatedOut(msgspec.Struct):
    subscription_id: str
    status: str


class PaymentOut(msgspec.Struct):
    id: int
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    created_at: datetime
    updated_at: datetime


class SubscriptionOut(msgspec.Struct):
    id: int
    subscription_id: str
    price_id: str
    status: str
    created_at: datetime
    updated_at: datetime


class ConfigOut(msgspec.Struct):
    publishable_key: str


class WebhookOut(msgspec.Struct):
    received: bool
    duplicate: bool
