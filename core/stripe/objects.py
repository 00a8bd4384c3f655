"""Stripe's objects as far as the platform reads them, each a msgspec Struct that
decodes the object of a snapshot event (`decode`). Stripe sends many more fields;
unknown ones are ignored. Ids that Stripe sends either as the id or as the expanded
object are `Ref`s, read with `id_of`."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from core.events.errors import InvalidEvent
from core.tables import MAX_BIGINT

StripeId = Annotated[str, Meta(min_length=1, max_length=255)]
Status = Annotated[str, Meta(min_length=1, max_length=64)]
Amount = Annotated[int, Meta(ge=0, le=MAX_BIGINT)]
Currency = Annotated[str, Meta(min_length=3, max_length=3)]
# An id, or the expanded object carrying it.
Ref = str | dict[str, Any] | None
Metadata = dict[str, Any] | None

T = TypeVar("T", bound=msgspec.Struct)


def id_of(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        if isinstance(inner, str) and inner:
            return inner
    return None


def metadata_user_id(metadata: Any) -> int | None:
    """The `metadata.user_id` the platform sets on every object it creates."""
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_BIGINT:
        return int(raw)
    return None


def decode(obj: dict[str, Any], kind: type[T], what: str) -> T:
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(f"{what}: {exc}") from None


class PaymentIntent(msgspec.Struct, kw_only=True):
    id: StripeId
    amount: Amount
    currency: Currency
    status: Status
    customer: Ref = None
    metadata: Metadata = None


class SubscriptionItem(msgspec.Struct, kw_only=True):
    price: Ref = None
    plan: Ref = None


class SubscriptionItems(msgspec.Struct, kw_only=True):
    data: list[SubscriptionItem] = []


class Subscription(msgspec.Struct, kw_only=True):
    id: StripeId
    status: Status
    customer: Ref = None
    metadata: Metadata = None
    items: SubscriptionItems | None = None
    plan: Ref = None

    def price_id(self) -> str | None:
        """The first item's price (or legacy plan), else the legacy top-level plan."""
        if self.items is not None and self.items.data:
            first = self.items.data[0]
            price = id_of(first.price) or id_of(first.plan)
            if price is not None:
                return price
        return id_of(self.plan)


class SubscriptionDetails(msgspec.Struct, kw_only=True):
    subscription: Ref = None


class InvoiceParent(msgspec.Struct, kw_only=True):
    subscription_details: SubscriptionDetails | None = None


class InvoicePaymentTarget(msgspec.Struct, kw_only=True):
    payment_intent: Ref = None


class InvoicePayment(msgspec.Struct, kw_only=True):
    payment: InvoicePaymentTarget | None = None


class InvoicePayments(msgspec.Struct, kw_only=True):
    data: list[InvoicePayment] = []


class InvoiceLinks(msgspec.Struct, kw_only=True):
    """What ties an invoice to its subscription, all the webhook reads of one."""

    subscription: Ref = None
    parent: InvoiceParent | None = None

    def subscription_id(self) -> str | None:
        """`subscription` before Stripe API 2025-03-31, `parent.subscription_details`
        since."""
        direct = id_of(self.subscription)
        if direct is not None:
            return direct
        details = self.parent.subscription_details if self.parent is not None else None
        return id_of(details.subscription) if details is not None else None


class Invoice(InvoiceLinks, kw_only=True):
    currency: Currency | None = None
    amount_paid: Amount | None = None
    amount_due: Amount | None = None
    customer: Ref = None
    metadata: Metadata = None
    payment_intent: Ref = None
    payments: InvoicePayments | None = None

    def payment_intent_id(self) -> str | None:
        """`payment_intent` before Stripe API 2025-03-31, `payments.data[].payment`
        since."""
        direct = id_of(self.payment_intent)
        if direct is not None:
            return direct
        for entry in self.payments.data if self.payments is not None else []:
            found = id_of(entry.payment.payment_intent) if entry.payment is not None else None
            if found is not None:
                return found
        return None
