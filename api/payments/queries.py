"""What the payment routes read: the caller's payments and subscriptions, in the state
the payment consumer applied."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import Payment, Subscription


async def payments_of(
    db_session: AsyncSession, user_id: int, limit: int, offset: int
) -> Sequence[Payment]:
    rows = await db_session.scalars(
        select(Payment)
        .where(Payment.user_id == user_id)
        .order_by(Payment.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


async def subscriptions_of(
    db_session: AsyncSession, user_id: int, limit: int, offset: int
) -> Sequence[Subscription]:
    rows = await db_session.scalars(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()
