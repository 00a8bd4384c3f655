"""The payments table: one row per payment intent of one of our users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.lifecycle import PAYMENT
from core.stripe.store.rows import StripeRows
from core.tables import Payment

ROWS = StripeRows(Payment, Payment.payment_intent_id, PAYMENT)


@dataclass(frozen=True)
class RecordedPayment:
    id: int
    payment_intent_id: str
    amount: int
    currency: str


async def by_key(session: AsyncSession, key: str) -> RecordedPayment | None:
    result = await session.execute(
        select(Payment.id, Payment.payment_intent_id, Payment.amount, Payment.currency).where(
            Payment.idempotency_key == key
        )
    )
    row = result.one_or_none()
    return None if row is None else RecordedPayment(*row)


async def count_finished(session: AsyncSession, user_id: int, amount: int, currency: str) -> int:
    return await ROWS.count_finished(
        session, user_id, Payment.amount == amount, Payment.currency == currency
    )


async def insert(
    session: AsyncSession,
    *,
    user_id: int,
    payment_intent_id: str,
    amount: int,
    currency: str,
    status: str,
    key: str | None = None,
    status_event_created: int | None = None,
) -> int | None:
    """By the API with its idempotency key, or by the consumer from an event (with the
    event's `created`) for an intent it has no row of."""
    return await ROWS.insert(
        session,
        {
            "user_id": user_id,
            "payment_intent_id": payment_intent_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "idempotency_key": key,
            "status_event_created": status_event_created,
        },
    )


async def payments_of(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> Sequence[Payment]:
    """The user's payments, newest first, in the state the payment consumer applied."""
    rows = await session.scalars(
        select(Payment)
        .where(Payment.user_id == user_id)
        .order_by(Payment.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()
