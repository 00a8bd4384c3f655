"""The stripe_customers table: one Stripe customer per user; and which of our users
owns a Stripe object."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.objects import metadata_user_id
from core.tables import StripeCustomer, User


async def of_user(session: AsyncSession, user_id: int) -> str | None:
    customer_id: str | None = await session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.user_id == user_id)
    )
    return customer_id


async def insert(session: AsyncSession, user_id: int, customer_id: str) -> bool:
    """False when the user already has a customer, or another user has this one."""
    inserted = await session.scalar(
        pg_insert(StripeCustomer)
        .values(user_id=user_id, customer_id=customer_id)
        .on_conflict_do_nothing()
        .returning(StripeCustomer.user_id)
    )
    return inserted is not None


async def owner(session: AsyncSession, customer_id: str | None, metadata: Any) -> int | None:
    """Our user behind a Stripe object: the customer we created for them, else the
    `metadata.user_id` we set; None for objects not made by this platform."""
    if customer_id is not None:
        user_id = await session.scalar(
            select(StripeCustomer.user_id).where(StripeCustomer.customer_id == customer_id)
        )
        if user_id is not None:
            return user_id
    hinted = metadata_user_id(metadata)
    if hinted is None:
        return None
    found: int | None = await session.scalar(select(User.id).where(User.id == hinted))
    return found
