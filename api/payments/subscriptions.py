"""Subscriptions to a price (`price_…`) or a legacy plan (`plan_…`).

Stripe charges a subscription's invoices to the customer's default payment method
(`invoice_settings.default_payment_method`). The frontend supplies it by creating a
PaymentMethod with Stripe.js (`stripe.createPaymentMethod({type: 'card', card})`) and
sending its `pm_…` id as `payment_method`; we attach it to the customer and make it
the default before creating the subscription. A customer that already has a default
may omit it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import RequestContext
from api.errors import ConflictError
from api.events import emit
from api.payments import claims, events, store
from api.payments.customers import ensure_customer
from api.payments.idempotency import IdempotencyKey, idempotency_key
from api.payments.schemas import SubscriptionCreatedOut, SubscriptionIn
from core.settings import Settings
from core.stripe.store import subscriptions

if TYPE_CHECKING:
    from stripe.params import SubscriptionCreateParamsItem

OPERATION = "create-subscription"


def subscription_item(price_id: str) -> SubscriptionCreateParamsItem:
    """Each kind of id in the field Stripe defines for it (localstripe knows plans only)."""
    if price_id.startswith("price_"):
        return {"price": price_id}
    return {"plan": price_id}


async def set_default_payment_method(
    client: stripe.StripeClient, customer_id: str, payment_method: str, key: IdempotencyKey
) -> str:
    """Attach the PaymentMethod and make it the invoices' default; returns its id (a test
    id such as `pm_card_visa` becomes a new `pm_…` when attached)."""
    attached = await client.v1.payment_methods.attach_async(
        payment_method,
        params={"customer": customer_id},
        options={"idempotency_key": key.step(f"attach:{payment_method}")},
    )
    await client.v1.customers.update_async(
        customer_id,
        params={"invoice_settings": {"default_payment_method": attached.id}},
        options={"idempotency_key": key.step(f"default:{payment_method}")},
    )
    return attached.id


def _requested(data: SubscriptionIn, client_key: str | None) -> dict[str, str | None]:
    """What the request asks for. With the client's key, everything it sent: the same
    key with another payment method is another request (409). Without one, the key is
    derived from the price alone (a double click with a changed card is still one
    subscription), so the price is the whole request."""
    if client_key is None:
        return {"price_id": data.price_id}
    return {"price_id": data.price_id, "payment_method": data.payment_method}


async def create_subscription(
    ctx: RequestContext,
    client: stripe.StripeClient,
    data: SubscriptionIn,
    client_key: str | None,
) -> SubscriptionCreatedOut:
    session, settings, user_id = ctx.session, ctx.settings, ctx.principal.id
    price_id = data.price_id
    generation = 0 if client_key else await subscriptions.count_finished(session, user_id, price_id)
    key = idempotency_key(OPERATION, user_id, client_key, {"price_id": price_id}, generation)
    digest = claims.request_hash(_requested(data, client_key))
    outcome = await claims.claim(session, key.value, OPERATION, digest)
    if isinstance(outcome, claims.Done):
        return SubscriptionCreatedOut(
            subscription_id=str(outcome.result["subscription_id"]),
            status=str(outcome.result["status"]),
        )
    return await claims.settle(
        session,
        outcome,
        _create(session, client, settings, user_id, data, key, outcome, ctx.traceparent),
    )


async def _create(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    user_id: int,
    data: SubscriptionIn,
    key: IdempotencyKey,
    held: claims.Claim,
    traceparent: str | None,
) -> SubscriptionCreatedOut:
    price_id = data.price_id
    existing = await subscriptions.by_key(session, key.value)
    if existing is not None:
        # Recorded before claims existed (migration 0004): its row is the answer.
        if existing.price_id != price_id:
            raise ConflictError(detail=claims.MISMATCH)
        return await _answer(session, held, existing.subscription_id, existing.status)

    customer_id, _ = await ensure_customer(session, client, settings, user_id, traceparent)
    await store.end_reads(session)
    if data.payment_method is not None:
        await set_default_payment_method(client, customer_id, data.payment_method, key)
    subscription = await client.v1.subscriptions.create_async(
        params={
            "customer": customer_id,
            "items": [subscription_item(price_id)],
            "metadata": {"user_id": str(user_id)},
        },
        options={"idempotency_key": key.value},
    )

    row_id = await subscriptions.insert(
        session,
        user_id=user_id,
        subscription_id=subscription.id,
        price_id=price_id,
        status=subscription.status,
        key=key.value,
    )
    if row_id is None:
        winner = await subscriptions.by_key(session, key.value)
        if winner is not None and winner.subscription_id != subscription.id:
            # Only after a claim was taken over (claims.LEASE): the recorded one is the
            # answer; the extra subscription this Stripe made is not ours to keep, so
            # cancel it. (A DELETE: idempotent by definition, Stripe takes no key.)
            await client.v1.subscriptions.cancel_async(subscription.id)
            return await _answer(session, held, winner.subscription_id, winner.status)
        if winner is None:
            await subscriptions.ROWS.adopt_key(session, subscription.id, key.value)
        return await _answer(session, held, subscription.id, subscription.status)
    await emit(
        session,
        settings,
        events.subscription_created(
            settings.kafka.topics,
            user_id=user_id,
            subscription_id=subscription.id,
            customer_id=customer_id,
            price_id=price_id,
            status=subscription.status,
            traceparent=traceparent,
        ),
    )
    return await _answer(session, held, subscription.id, subscription.status)


async def _answer(
    session: AsyncSession, held: claims.Claim, subscription_id: str, status: str
) -> SubscriptionCreatedOut:
    await claims.complete(session, held, {"subscription_id": subscription_id, "status": status})
    return SubscriptionCreatedOut(subscription_id=subscription_id, status=status)
