"""The stripe_events table: every Stripe event the webhook accepted, once."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.stripe.event import ReceivedEvent
from core.tables import StripeEvent


async def insert_once(session: AsyncSession, received: ReceivedEvent) -> bool:
    """False when the Stripe event id is already stored. Race-safe: of concurrent
    deliveries of one event, the others wait on the unique index for the first to
    commit, then find the conflict and insert nothing."""
    event = received.event
    inserted = await session.scalar(
        insert(StripeEvent)
        .values(
            stripe_event_id=event.id,
            event_type=event.type,
            livemode=event.livemode,
            stripe_created=event.created,
            payload=received.payload,
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.stripe_event_id])
        .returning(StripeEvent.id)
    )
    return inserted is not None
