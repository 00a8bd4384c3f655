"""One Stripe customer per user, its metadata carrying our user id."""

from __future__ import annotations

import stripe
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ConflictError
from api.events import emit
from api.payments import events, store
from api.payments.idempotency import IdempotencyKey, idempotency_key
from core.settings import Settings

OPERATION = "create-customer"


def customer_key(user_id: int, client_key: str | None) -> IdempotencyKey:
    """Derived from the user alone: whichever route creates the customer first
    (create-customer or create-subscription), concurrent attempts send Stripe the
    same key and get the same customer."""
    return idempotency_key(OPERATION, user_id, client_key, {})


async def ensure_customer(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    user_id: int,
    key: IdempotencyKey,
    traceparent: str | None,
) -> tuple[str, bool]:
    """(customer id, created now). When created, the stripe_customers row and its
    `payment.customer_created` event are in the session, not yet committed."""
    existing = await store.customer_of(session, user_id)
    if existing is not None:
        return existing, False
    contact = await store.user_contact(session, user_id)
    if contact is None:
        raise NotFoundException(detail="user not found")
    await store.end_reads(session)
    customer = await client.v1.customers.create_async(
        params={
            "email": contact.email,
            "name": contact.username,
            "metadata": {"user_id": str(user_id)},
        },
        options={"idempotency_key": key.value},
    )
    if await store.insert_customer(session, user_id, customer.id):
        await emit(
            session,
            settings,
            events.customer_created(settings.kafka.topics, user_id, customer.id, traceparent),
        )
        return customer.id, True
    # A concurrent request recorded the user's customer first: everyone uses that one.
    winner = await store.customer_of(session, user_id)
    if winner is None:
        # The conflict was on customer_id: Stripe answered with a customer that another
        # user owns, which only a key collision could cause. Refuse rather than share.
        raise ConflictError(detail="this Stripe customer belongs to another user")
    return winner, False
