"""Applying the state a Stripe event reports to its payment or subscription row, unless
it would move the object backwards (`core/stripe/lifecycle.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from consumers.handlers.payments.change import PaymentChange
from consumers.handlers.payments.processed import processed
from consumers.registry import HandlerContext
from core.stripe.lifecycle import SUCCEEDED
from core.stripe.store import customers, payments
from core.stripe.store.rows import StripeRows

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reported:
    """An object's state as one event reports it."""

    noun: str  # what the logs call the object
    stripe_id: str
    status: str
    created: int
    customer_id: str | None
    metadata: Any


@dataclass(frozen=True)
class Applied:
    row_id: int
    user_id: int


async def apply_state(
    session: AsyncSession,
    rows: StripeRows,
    reported: Reported,
    insert: Callable[[int], Awaitable[int | None]],
    **moved: Any,
) -> Applied | None:
    """Record the object when it has no row (`insert`, given its owner, answers the new
    row's id or None on a conflict), else move its row to the reported state and the
    `moved` columns. None when the event is ignored: the object is none of our users',
    or the state would move it backwards."""
    row = await rows.lock(session, reported.stripe_id)
    if row is None:
        user_id = await customers.owner(session, reported.customer_id, reported.metadata)
        if user_id is None:
            log.info(f"{reported.noun} of no user of ours, ignored", stripe_id=reported.stripe_id)
            return None
        # The event came before the API committed its row, or the object is one Stripe
        # made (a subscription's invoice's intent): record it from the event.
        row_id = await insert(user_id)
        if row_id is not None:
            return Applied(row_id, user_id)
        # Inserted meanwhile by the API or by a concurrent handler: decide against it.
        row = await rows.lock(session, reported.stripe_id)
        if row is None:
            raise RuntimeError(f"{reported.noun} {reported.stripe_id} vanished after a conflict")
    if not rows.lifecycle.supersedes(
        row.status, row.status_event_created, reported.status, reported.created
    ):
        log.info(
            f"stale {reported.noun} event ignored",
            stripe_id=reported.stripe_id,
            stored=row.status,
            stored_created=row.status_event_created,
            event_status=reported.status,
            event_created=reported.created,
        )
        return None
    await rows.move(session, row.id, reported.status, reported.created, **moved)
    return Applied(row.id, row.user_id)


async def apply_payment(ctx: HandlerContext, change: PaymentChange) -> None:
    async def insert(user_id: int) -> int | None:
        return await payments.insert(
            ctx.session,
            user_id=user_id,
            payment_intent_id=change.payment_intent_id,
            amount=change.amount,
            currency=change.currency,
            status=change.status,
            status_event_created=change.created,
        )

    applied = await apply_state(
        ctx.session,
        payments.ROWS,
        Reported(
            noun="payment",
            stripe_id=change.payment_intent_id,
            status=change.status,
            created=change.created,
            customer_id=change.customer_id,
            metadata=change.metadata,
        ),
        insert,
        amount=change.amount,
        currency=change.currency,
    )
    if applied is not None and change.status == SUCCEEDED:
        await processed(ctx, applied.row_id, applied.user_id, change)
