"""The reads and writes of the payment routes that are the API's alone. The tables of
Stripe's objects have one owner, shared with the payment consumer
(`core/stripe/store/`); the routes' writes run after the Stripe call, in the
request's transaction, together with their outbox event."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.event import ReceivedEvent
from core.stripe.store import events
from core.tables import User


@dataclass(frozen=True)
class Contact:
    username: str
    email: str


async def end_reads(session: AsyncSession) -> None:
    """Close the read-only transaction before calling Stripe, so no pooled connection
    sits idle in a transaction for the length of an HTTP call. Nothing was written;
    the writes after the call start a new transaction, which the request commits."""
    await session.rollback()


async def user_contact(session: AsyncSession, user_id: int) -> Contact | None:
    result = await session.execute(select(User.username, User.email).where(User.id == user_id))
    row = result.one_or_none()
    return None if row is None else Contact(*row)


async def insert_stripe_event(session: AsyncSession, event: ReceivedEvent) -> bool:
    """The webhook's write: False when Stripe's event id is already stored."""
    return await events.insert_once(session, event)
