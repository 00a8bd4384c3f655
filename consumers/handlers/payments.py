"""payment-events: Stripe's events (stored by the API's webhook as `stripe.<type>`)
move payments and subscriptions forward. A payment that reaches `succeeded` emits
`payment.processed` and notifies its user in the same transaction as the change.

Stripe neither orders its deliveries nor sends each once, so no event may move an
object backwards. `Lifecycle.supersedes` decides whether an event's state replaces
the stored one:
- a finished state (succeeded, canceled, ...) is final: Stripe never leaves one;
- a finished state replaces any unfinished one, however late it arrives;
- otherwise the newer event wins by Stripe's `created`, and within the same second
  (`created` has whole seconds) the state further along the lifecycle wins;
- a row the API wrote has no event time yet: only a state at least as far along
  replaces it.
Rows are read FOR UPDATE, so the events of one intent arriving under different keys
(its own, and its invoice's subscription) apply one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from consumers.handlers.notify import notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.outbox import NewEvent
from core.tables import Payment, StripeCustomer, Subscription, User

log = structlog.get_logger(__name__)

handlers = HandlerGroup(consumer="payments", topic="payment")

SUCCEEDED = "succeeded"
MAX_BIGINT = 2**63 - 1
MAX_STATUS_CHARS = 64
# payment.processed's event id follows from the intent: the outbox's unique event_id
# then refuses a second one for the same intent, should a bug ever try.
PROCESSED_NAMESPACE = uuid.UUID("0b7f4f5e-2a0c-4d8e-bb1f-6a1e3c9d2f40")

PAYMENT_INTENT_EVENTS = tuple(
    f"stripe.payment_intent.{name}"
    for name in (
        "created",
        "processing",
        "requires_action",
        "amount_capturable_updated",
        "partially_funded",
        "payment_failed",
        "succeeded",
        "canceled",
    )
)
SUBSCRIPTION_EVENTS = tuple(
    f"stripe.customer.subscription.{name}"
    for name in (
        "created",
        "updated",
        "deleted",
        "paused",
        "resumed",
        "trial_will_end",
        "pending_update_applied",
        "pending_update_expired",
    )
)
# What an invoice event says about the payment intent collecting it. The other invoice
# events change neither a payment nor a subscription.
INVOICE_PAYMENT_STATUS: Mapping[str, str] = {
    "stripe.invoice.paid": SUCCEEDED,
    "stripe.invoice.payment_succeeded": SUCCEEDED,
    "stripe.invoice.payment_failed": "requires_payment_method",
    "stripe.invoice.payment_action_required": "requires_action",
    "stripe.invoice.voided": "canceled",
}
INVOICE_EVENTS = tuple(
    sorted(
        {
            *INVOICE_PAYMENT_STATUS,
            *(
                f"stripe.invoice.{name}"
                for name in (
                    "created",
                    "deleted",
                    "finalization_failed",
                    "finalized",
                    "marked_uncollectible",
                    "overdue",
                    "overpaid",
                    "sent",
                    "upcoming",
                    "updated",
                    "will_be_due",
                )
            ),
        }
    )
)
# A paid invoice activates a subscription waiting for that payment.
ACTIVATED_BY_PAYMENT = ("incomplete", "past_due", "unpaid")
# ISO 4217 currencies without minor units, for the notification's wording.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)


@dataclass(frozen=True)
class Lifecycle:
    ranks: Mapping[str, int]
    finished: frozenset[str]

    def rank(self, status: str) -> int:
        # A status Stripe adds later counts as the start: it never outranks a known one.
        return self.ranks.get(status, 0)

    def supersedes(
        self, current: str, current_created: int | None, new: str, new_created: int
    ) -> bool:
        if current in self.finished:
            # Only the first event confirming a finished state the API recorded without
            # an event time still applies (it stamps the time, and may emit effects).
            return current_created is None and new == current
        if new in self.finished:
            return True
        if current_created is None:
            return self.rank(new) >= self.rank(current)
        if new_created != current_created:
            return new_created > current_created
        return self.rank(new) > self.rank(current)


PAYMENT = Lifecycle(
    ranks={
        "requires_payment_method": 0,
        "requires_confirmation": 1,
        "requires_action": 2,
        "processing": 3,
        "requires_capture": 4,
        "succeeded": 5,
        "canceled": 5,
    },
    finished=frozenset({"succeeded", "canceled"}),
)
SUBSCRIPTION = Lifecycle(
    ranks={
        "incomplete": 0,
        "trialing": 1,
        "active": 2,
        "past_due": 3,
        "unpaid": 4,
        "paused": 4,
        "incomplete_expired": 5,
        "canceled": 5,
    },
    finished=frozenset({"canceled", "incomplete_expired"}),
)


# --- reading Stripe's event out of the envelope -------------------------------------


@dataclass(frozen=True)
class StripeSnapshot:
    """A Stripe event as the webhook stored it: `data` of the envelope."""

    id: str
    created: int
    object: dict[str, Any]


def snapshot(ctx: HandlerContext) -> StripeSnapshot:
    doc = ctx.event.data
    event_id, created, data = doc.get("id"), doc.get("created"), doc.get("data")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidEvent("data.id (the Stripe event id) is missing")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created <= MAX_BIGINT:
        raise InvalidEvent("data.created must be a unix timestamp")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise InvalidEvent("data.data.object is missing")
    return StripeSnapshot(id=event_id, created=created, object=obj)


def id_of(value: Any) -> str | None:
    """An id Stripe sends either as the id or as the expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        inner = value.get("id")
        if isinstance(inner, str) and inner:
            return inner
    return None


def required_id(obj: dict[str, Any], what: str) -> str:
    value = id_of(obj)
    if value is None or len(value) > 255:
        raise InvalidEvent(f"{what} has no usable id")
    return value


def status_of(obj: dict[str, Any], what: str) -> str:
    status = obj.get("status")
    if not isinstance(status, str) or not 0 < len(status) <= MAX_STATUS_CHARS:
        raise InvalidEvent(f"{what} has no usable status")
    return status


def amount_of(obj: dict[str, Any], field: str) -> int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BIGINT:
        raise InvalidEvent(f"{field} must be a non-negative integer")
    return value


def currency_of(obj: dict[str, Any]) -> str:
    currency = obj.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise InvalidEvent("currency must be a three-letter code")
    return currency.lower()


def subscription_price(obj: dict[str, Any]) -> str | None:
    """The first item's price (or legacy plan), else the legacy top-level plan."""
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        price = id_of(data[0].get("price")) or id_of(data[0].get("plan"))
        if price is not None:
            return price
    return id_of(obj.get("plan"))


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """`subscription` before Stripe API 2025-03-31, `parent.subscription_details` since."""
    direct = id_of(invoice.get("subscription"))
    if direct is not None:
        return direct
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    return id_of(details.get("subscription")) if isinstance(details, dict) else None


def invoice_payment_intent(invoice: dict[str, Any]) -> str | None:
    """`payment_intent` before Stripe API 2025-03-31, `payments.data[].payment` since."""
    direct = id_of(invoice.get("payment_intent"))
    if direct is not None:
        return direct
    payments = invoice.get("payments")
    data = payments.get("data") if isinstance(payments, dict) else None
    for entry in data if isinstance(data, list) else []:
        payment = entry.get("payment") if isinstance(entry, dict) else None
        found = id_of(payment.get("payment_intent")) if isinstance(payment, dict) else None
        if found is not None:
            return found
    return None


async def owner(session: AsyncSession, customer_id: str | None, metadata: Any) -> int | None:
    """Our user behind a Stripe object: the customer we created for them, else the
    `metadata.user_id` we set; None for objects not made by this platform."""
    if customer_id is not None:
        user_id = await session.scalar(
            select(StripeCustomer.user_id).where(StripeCustomer.customer_id == customer_id)
        )
        if user_id is not None:
            return user_id
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_BIGINT:
        found: int | None = await session.scalar(select(User.id).where(User.id == int(raw)))
        return found
    return None


# --- payments -----------------------------------------------------------------------


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


@dataclass(frozen=True)
class LockedPayment:
    id: int
    user_id: int
    status: str
    status_event_created: int | None


async def locked_payment(session: AsyncSession, payment_intent_id: str) -> LockedPayment | None:
    result = await session.execute(
        select(Payment.id, Payment.user_id, Payment.status, Payment.status_event_created)
        .where(Payment.payment_intent_id == payment_intent_id)
        .with_for_update()
    )
    row = result.one_or_none()
    return None if row is None else LockedPayment(*row)


async def apply_payment(ctx: HandlerContext, change: PaymentChange) -> None:
    session = ctx.session
    row = await locked_payment(session, change.payment_intent_id)
    if row is None:
        user_id = await owner(session, change.customer_id, change.metadata)
        if user_id is None:
            log.info("payment intent of no user of ours, ignored", intent=change.payment_intent_id)
            return
        # The event came before the API committed its row, or the intent is one Stripe
        # made (a subscription's invoice): record it from the event.
        payment_id = await session.scalar(
            insert(Payment)
            .values(
                user_id=user_id,
                payment_intent_id=change.payment_intent_id,
                amount=change.amount,
                currency=change.currency,
                status=change.status,
                status_event_created=change.created,
            )
            .on_conflict_do_nothing(index_elements=[Payment.payment_intent_id])
            .returning(Payment.id)
        )
        if payment_id is not None:
            if change.status == SUCCEEDED:
                await processed(ctx, payment_id, user_id, change)
            return
        # Inserted meanwhile by the API or by a concurrent handler: decide against it.
        row = await locked_payment(session, change.payment_intent_id)
        if row is None:
            raise RuntimeError(f"payment {change.payment_intent_id} vanished after a conflict")
    if not PAYMENT.supersedes(row.status, row.status_event_created, change.status, change.created):
        log.info(
            "stale payment event ignored",
            intent=change.payment_intent_id,
            stored=row.status,
            stored_created=row.status_event_created,
            event_status=change.status,
            event_created=change.created,
        )
        return
    await session.execute(
        update(Payment)
        .where(Payment.id == row.id)
        .values(
            status=change.status,
            status_event_created=change.created,
            amount=change.amount,
            currency=change.currency,
            updated_at=func.now(),
        )
    )
    if change.status == SUCCEEDED:
        await processed(ctx, row.id, row.user_id, change)


def money(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


async def processed(
    ctx: HandlerContext, payment_id: int, user_id: int, change: PaymentChange
) -> None:
    """The payment just reached `succeeded`: `payment.processed` and a notification."""
    data = {
        "payment_id": payment_id,
        "payment_intent_id": change.payment_intent_id,
        "amount": change.amount,
        "currency": change.currency,
        "user_id": user_id,
        "stripe_event_id": change.stripe_event_id,
    }
    await ctx.emit(
        NewEvent(
            topic=ctx.settings.kafka.topics.payment,
            event_type="payment.processed",
            aggregate_type="payment_intent",
            aggregate_id=change.payment_intent_id,
            data=data,
            user_id=user_id,
            event_id=uuid.uuid5(PROCESSED_NAMESPACE, change.payment_intent_id),
        )
    )
    notify(
        ctx,
        user_id,
        "payment.succeeded",
        f"Payment of {money(change.amount, change.currency)} received",
        data,
    )


@handlers.on(*PAYMENT_INTENT_EVENTS)
async def payment_intent_changed(ctx: HandlerContext) -> None:
    snap = snapshot(ctx)
    intent = snap.object
    await apply_payment(
        ctx,
        PaymentChange(
            payment_intent_id=required_id(intent, "payment intent"),
            amount=amount_of(intent, "amount"),
            currency=currency_of(intent),
            status=status_of(intent, "payment intent"),
            created=snap.created,
            customer_id=id_of(intent.get("customer")),
            metadata=intent.get("metadata"),
            stripe_event_id=snap.id,
        ),
    )


# --- subscriptions ------------------------------------------------------------------


@dataclass(frozen=True)
class LockedSubscription:
    id: int
    status: str
    status_event_created: int | None


async def locked_subscription(
    session: AsyncSession, subscription_id: str
) -> LockedSubscription | None:
    result = await session.execute(
        select(Subscription.id, Subscription.status, Subscription.status_event_created)
        .where(Subscription.subscription_id == subscription_id)
        .with_for_update()
    )
    row = result.one_or_none()
    return None if row is None else LockedSubscription(*row)


async def move_subscription(
    session: AsyncSession,
    row: LockedSubscription,
    status: str,
    created: int,
    price_id: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "status_event_created": created,
        "updated_at": func.now(),
    }
    if price_id is not None:
        values["price_id"] = price_id
    await session.execute(update(Subscription).where(Subscription.id == row.id).values(**values))


@handlers.on(*SUBSCRIPTION_EVENTS)
async def subscription_changed(ctx: HandlerContext) -> None:
    snap = snapshot(ctx)
    sub = snap.object
    subscription_id = required_id(sub, "subscription")
    status = status_of(sub, "subscription")
    price_id = subscription_price(sub)
    if price_id is not None and len(price_id) > 255:
        raise InvalidEvent("subscription price id is too long")
    session = ctx.session
    row = await locked_subscription(session, subscription_id)
    if row is None:
        user_id = await owner(session, id_of(sub.get("customer")), sub.get("metadata"))
        if user_id is None:
            log.info("subscription of no user of ours, ignored", subscription=subscription_id)
            return
        if price_id is None:
            raise InvalidEvent(f"subscription {subscription_id} names no price or plan")
        inserted = await session.scalar(
            insert(Subscription)
            .values(
                user_id=user_id,
                subscription_id=subscription_id,
                price_id=price_id,
                status=status,
                status_event_created=snap.created,
            )
            .on_conflict_do_nothing(index_elements=[Subscription.subscription_id])
            .returning(Subscription.id)
        )
        if inserted is not None:
            return
        row = await locked_subscription(session, subscription_id)
        if row is None:
            raise RuntimeError(f"subscription {subscription_id} vanished after a conflict")
    if not SUBSCRIPTION.supersedes(row.status, row.status_event_created, status, snap.created):
        log.info(
            "stale subscription event ignored",
            subscription=subscription_id,
            stored=row.status,
            stored_created=row.status_event_created,
            event_status=status,
            event_created=snap.created,
        )
        return
    await move_subscription(session, row, status, snap.created, price_id)


# --- invoices -----------------------------------------------------------------------


@handlers.on(*INVOICE_EVENTS)
async def invoice_changed(ctx: HandlerContext) -> None:
    payment_status = INVOICE_PAYMENT_STATUS.get(ctx.event.event_type)
    if payment_status is None:
        return
    snap = snapshot(ctx)
    invoice = snap.object
    payment_intent_id = invoice_payment_intent(invoice)
    if payment_intent_id is not None:
        paid = amount_of(invoice, "amount_paid") if "amount_paid" in invoice else 0
        amount = (
            paid if payment_status == SUCCEEDED and paid > 0 else amount_of(invoice, "amount_due")
        )
        await apply_payment(
            ctx,
            PaymentChange(
                payment_intent_id=payment_intent_id,
                amount=amount,
                currency=currency_of(invoice),
                status=payment_status,
                created=snap.created,
                customer_id=id_of(invoice.get("customer")),
                metadata=invoice.get("metadata"),
                stripe_event_id=snap.id,
            ),
        )
    subscription_id = invoice_subscription(invoice)
    if payment_status != SUCCEEDED or subscription_id is None:
        return
    # Stripe also sends customer.subscription.updated for this; the invoice may come
    # first, and a subscription whose payment went through is active.
    row = await locked_subscription(ctx.session, subscription_id)
    if (
        row is not None
        and row.status in ACTIVATED_BY_PAYMENT
        and SUBSCRIPTION.supersedes(row.status, row.status_event_created, "active", snap.created)
    ):
        await move_subscription(ctx.session, row, "active", snap.created)
