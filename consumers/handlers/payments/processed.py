"""A payment just reached `succeeded`: `payment.processed` and a notification."""

from __future__ import annotations

import uuid

from consumers.handlers.notify import notify
from consumers.handlers.payments.change import PaymentChange
from consumers.registry import HandlerContext
from core.events.payments import PaymentProcessed

# payment.processed's event id follows from the intent: the outbox's unique event_id
# then refuses a second one for the same intent, should a bug ever try.
PROCESSED_NAMESPACE = uuid.UUID("0b7f4f5e-2a0c-4d8e-bb1f-6a1e3c9d2f40")
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


def money(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


async def processed(
    ctx: HandlerContext, payment_id: int, user_id: int, change: PaymentChange
) -> None:
    event = PaymentProcessed(
        payment_id=payment_id,
        payment_intent_id=change.payment_intent_id,
        amount=change.amount,
        currency=change.currency,
        user_id=user_id,
        stripe_event_id=change.stripe_event_id,
    )
    await ctx.emit(
        event.new_event(
            ctx.settings.kafka.topics,
            event_id=uuid.uuid5(PROCESSED_NAMESPACE, change.payment_intent_id),
        )
    )
    notify(
        ctx,
        user_id,
        "payment.succeeded",
        f"Payment of {money(change.amount, change.currency)} received",
        event.to_data(),
    )
