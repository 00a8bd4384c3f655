"""One Stripe customer per user, its metadata carrying our user id."""

from __future__ import annotations

import stripe
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ConflictError
from api.events import emit
from api.payments import claims, events, store
from api.payments.idempotency import IdempotencyKey, idempotency_key
from core.settings import Settings
from core.stores import users
from core.stripe.store import customers

OPERATION = "create-customer"


def customer_key(user_id: int) -> IdempotencyKey:
    """Derived from the user alone: one customer per user is the operation's own
    idempotency, so whichever route creates it first (create-customer or
    create-subscription), concurrent attempts share one claim and one Stripe key."""
    return idempotency_key(OPERATION, user_id, None, {})


async def ensure_customer(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    user_id: int,
    traceparent: str | None,
) -> tuple[str, bool]:
    """(customer id, created now). When created, the stripe_customers row, its
    `payment.customer_created` event and the completed claim are committed."""
    existing = await customers.of_user(session, user_id)
    if existing is not None:
        return existing, False
    key = customer_key(user_id)
    outcome = await claims.claim(session, key.value, OPERATION, claims.request_hash({}))
    if isinstance(outcome, claims.Done):
        return str(outcome.result["customer_id"]), False
    # Committed by settle: the customer exists at Stripe whatever the caller does next.
    return await claims.settle(
        session, outcome, _create(session, client, settings, user_id, key, outcome, traceparent)
    )


async def _create(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    user_id: int,
    key: IdempotencyKey,
    held: claims.Claim,
    traceparent: str | None,
) -> tuple[str, bool]:
    existing = await customers.of_user(session, user_id)
    if existing is not None:
        # Recorded before claims existed (migration 0004), or by the request whose
        # claim we took over.
        await claims.complete(session, held, {"customer_id": existing})
        return existing, False
    contact = await users.user_contact(session, user_id)
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
    if await customers.insert(session, user_id, customer.id):
        await emit(
            session,
            settings,
            events.customer_created(settings.kafka.topics, user_id, customer.id, traceparent),
        )
        await claims.complete(session, held, {"customer_id": customer.id})
        return customer.id, True
    # Only after a claim was taken over (claims.LEASE): the user's recorded customer
    # is the one everyone uses.
    winner = await customers.of_user(session, user_id)
    if winner is None:
        # The conflict was on customer_id: Stripe answered with a customer that another
        # user owns, which only a key collision could cause. Refuse rather than share.
        raise ConflictError(detail="this Stripe customer belongs to another user")
    await claims.complete(session, held, {"customer_id": winner})
    return winner, False
