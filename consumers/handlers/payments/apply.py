"""Applying a payment state an event reports, unless it would move the payment
backwards (`core/stripe/lifecycle.py`)."""

from __future__ import annotations

import structlog

from consumers.handlers.payments.change import PaymentChange
from consumers.handlers.payments.processed import processed
from consumers.registry import HandlerContext
from core.stripe.lifecycle import PAYMENT, SUCCEEDED
from core.stripe.store import customers, payments

log = structlog.get_logger(__name__)


async def apply_payment(ctx: HandlerContext, change: PaymentChange) -> None:
    session = ctx.session
    row = await payments.ROWS.lock(session, change.payment_intent_id)
    if row is None:
        user_id = await customers.owner(session, change.customer_id, change.metadata)
        if user_id is None:
            log.info("payment intent of no user of ours, ignored", intent=change.payment_intent_id)
            return
        # The event came before the API committed its row, or the intent is one Stripe
        # made (a subscription's invoice): record it from the event.
        payment_id = await payments.insert(
            session,
            user_id=user_id,
            payment_intent_id=change.payment_intent_id,
            amount=change.amount,
            currency=change.currency,
            status=change.status,
            status_event_created=change.created,
        )
        if payment_id is not None:
            if change.status == SUCCEEDED:
                await processed(ctx, payment_id, user_id, change)
            return
        # Inserted meanwhile by the API or by a concurrent handler: decide against it.
        row = await payments.ROWS.lock(session, change.payment_intent_id)
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
    await payments.ROWS.move(
        session,
        row.id,
        change.status,
        change.created,
        amount=change.amount,
        currency=change.currency,
    )
    if change.status == SUCCEEDED:
        await processed(ctx, row.id, row.user_id, change)
