"""`stripe.payment_intent.*`: the intent's own state."""

from __future__ import annotations

from consumers.handlers.payments.apply import apply_payment
from consumers.handlers.payments.change import PaymentChange
from consumers.handlers.payments.group import handlers
from consumers.registry import HandlerContext
from core.stripe import event_types
from core.stripe.event import StripeSnapshotEvent, event_type_of
from core.stripe.objects import PaymentIntent, decode, id_of


@handlers.handle(StripeSnapshotEvent, *map(event_type_of, event_types.PAYMENT_INTENT))
async def payment_intent_changed(ctx: HandlerContext, event: StripeSnapshotEvent) -> None:
    intent = decode(event.data.object, PaymentIntent, "payment intent")
    await apply_payment(
        ctx,
        PaymentChange(
            payment_intent_id=intent.id,
            amount=intent.amount,
            currency=intent.currency.lower(),
            status=intent.status,
            created=event.created,
            customer_id=id_of(intent.customer),
            metadata=intent.metadata,
            stripe_event_id=event.id,
        ),
    )
