"""The transaction steps of the payment routes that are the API's alone. The tables of
Stripe's objects have one owner, shared with the payment consumer
(`core/stripe/store/`), and so has the users table (`core/stores/users`); the
routes' writes run after the Stripe call, in the request's transaction, together
with their outbox event."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.event import ReceivedEvent
from core.stripe.store import events


async def end_reads(session: AsyncSession) -> None:
    """Close the read-only transaction before calling Stripe, so no pooled connection
    sits idle in a transaction for the length of an HTTP call. Nothing was written;
    the writes after the call start a new transaction, which the request commits."""
    await session.rollback()


async def insert_stripe_event(session: AsyncSession, event: ReceivedEvent) -> bool:
    """The webhook's write: False when Stripe's event id is already stored."""
    return await events.insert_once(session, event)
