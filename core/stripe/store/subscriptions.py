"""The subscriptions table: one row per Stripe subscription of one of our users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.lifecycle import SUBSCRIPTION
from core.stripe.store.rows import StripeRows
from core.tables import Subscription

ROWS = StripeRows(Subscription, Subscription.subscription_id, SUBSCRIPTION)


@dataclass(frozen=True)
class RecordedSubscription:
    subscription_id: str
    price_id: str
    status: str


async def by_key(session: AsyncSession, key: str) -> RecordedSubscription | None:
    result = await session.execute(
        select(Subscription.subscription_id, Subscription.price_id, Subscription.status).where(
            Subscription.idempotency_key == key
        )
    )
    row = result.one_or_none()
    return None if row is None else RecordedSubscription(*row)


async def count_finished(session: AsyncSession, user_id: int, price_id: str) -> int:
    return await ROWS.count_finished(session, user_id, Subscription.price_id == price_id)


async def insert(
    session: AsyncSession,
    *,
    user_id: int,
    subscription_id: str,
    price_id: str,
    status: str,
    key: str | None = None,
    status_event_created: int | None = None,
) -> int | None:
    return await ROWS.insert(
        session,
        {
            "user_id": user_id,
            "subscription_id": subscription_id,
            "price_id": price_id,
            "status": status,
            "idempotency_key": key,
            "status_event_created": status_event_created,
        },
    )


async def subscriptions_of(
    session: AsyncSession, user_id: int, limit: int, offset: int
) -> Sequence[Subscription]:
    """The user's subscriptions, newest first, in the state the payment consumer applied."""
    rows = await session.scalars(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()
