"""`stripe.invoice.*`: what an invoice says about the payment intent collecting it,
and, once paid, about its subscription."""

from __future__ import annotations

from consumers.handlers.payments.apply import apply_payment
from consumers.handlers.payments.change import PaymentChange
from consumers.handlers.payments.group import handlers
from consumers.registry import HandlerContext, InvalidEvent
from core.stripe import event_types
from core.stripe.event import StripeSnapshotEvent, event_type_of
from core.stripe.lifecycle import ACTIVATED_BY_PAYMENT, ACTIVE, SUBSCRIPTION, SUCCEEDED
from core.stripe.objects import Invoice, decode, id_of
from core.stripe.store import subscriptions


@handlers.handle(StripeSnapshotEvent, *map(event_type_of, event_types.INVOICE))
async def invoice_changed(ctx: HandlerContext, event: StripeSnapshotEvent) -> None:
    payment_status = event_types.INVOICE_PAYMENT_STATUS.get(event.type)
    if payment_status is None:
        return
    invoice = decode(event.data.object, Invoice, "invoice")
    payment_intent_id = invoice.payment_intent_id()
    if payment_intent_id is not None:
        await apply_payment(
            ctx,
            PaymentChange(
                payment_intent_id=payment_intent_id,
                amount=_amount(invoice, payment_status),
                currency=_currency(invoice),
                status=payment_status,
                created=event.created,
                customer_id=id_of(invoice.customer),
                metadata=invoice.metadata,
                stripe_event_id=event.id,
            ),
        )
    subscription_id = invoice.subscription_id()
    if payment_status != SUCCEEDED or subscription_id is None:
        return
    # Stripe also sends customer.subscription.updated for this; the invoice may come
    # first, and a subscription whose payment went through is active.
    row = await subscriptions.ROWS.lock(ctx.session, subscription_id)
    if (
        row is not None
        and row.status in ACTIVATED_BY_PAYMENT
        and SUBSCRIPTION.supersedes(row.status, row.status_event_created, ACTIVE, event.created)
    ):
        await subscriptions.ROWS.move(ctx.session, row.id, ACTIVE, event.created)


def _amount(invoice: Invoice, payment_status: str) -> int:
    """What was paid, for a paid invoice that says so; else what is due."""
    paid = invoice.amount_paid or 0
    if payment_status == SUCCEEDED and paid > 0:
        return paid
    if invoice.amount_due is None:
        raise InvalidEvent("invoice: amount_due is missing")
    return invoice.amount_due


def _currency(invoice: Invoice) -> str:
    if invoice.currency is None:
        raise InvalidEvent("invoice: currency is missing")
    return invoice.currency.lower()
