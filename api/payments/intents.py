"""One-off payments: a PaymentIntent the frontend confirms with Stripe.js."""

from __future__ import annotations

from typing import TYPE_CHECKING

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import RequestContext
from api.errors import ConflictError, invalid
from api.events import emit
from api.payments import claims, events, store
from api.payments.idempotency import idempotency_key
from api.payments.schemas import PaymentIntentIn, PaymentIntentOut
from core.settings import Settings
from core.stripe.store import customers, payments

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams

OPERATION = "create-payment-intent"


def checked(settings: Settings, data: PaymentIntentIn) -> tuple[int, str]:
    """(amount, lowercase currency) within the configured limits, else a 400."""
    if data.amount > settings.stripe.max_amount:
        raise invalid("amount", f"must be at most {settings.stripe.max_amount} (minor units)")
    currency = data.currency.lower()
    if currency not in settings.stripe.currencies:
        raise invalid("currency", f"must be one of {', '.join(settings.stripe.currencies)}")
    return data.amount, currency


def _out(intent: stripe.PaymentIntent) -> PaymentIntentOut:
    if not intent.client_secret:
        raise stripe.APIError(f"payment intent {intent.id} came back without a client secret")
    return PaymentIntentOut(client_secret=intent.client_secret, payment_intent_id=intent.id)


async def _recorded(client: stripe.StripeClient, payment_intent_id: str) -> PaymentIntentOut:
    # The client secret is not stored (it lets anyone confirm the payment); read it back.
    return _out(await client.v1.payment_intents.retrieve_async(payment_intent_id))


async def create_intent(
    ctx: RequestContext,
    client: stripe.StripeClient,
    data: PaymentIntentIn,
    client_key: str | None,
) -> PaymentIntentOut:
    session, settings, user_id = ctx.session, ctx.settings, ctx.principal.id
    amount, currency = checked(settings, data)
    generation = (
        0 if client_key else await payments.count_finished(session, user_id, amount, currency)
    )
    requested = {"amount": amount, "currency": currency}
    key = idempotency_key(OPERATION, user_id, client_key, requested, generation)
    outcome = await claims.claim(session, key.value, OPERATION, claims.request_hash(requested))
    if isinstance(outcome, claims.Done):
        return await _recorded(client, str(outcome.result["payment_intent_id"]))
    return await claims.settle(
        session,
        outcome,
        _create(
            session,
            client,
            settings,
            user_id,
            amount,
            currency,
            key.value,
            outcome,
            ctx.traceparent,
        ),
    )


async def _create(
    session: AsyncSession,
    client: stripe.StripeClient,
    settings: Settings,
    user_id: int,
    amount: int,
    currency: str,
    key: str,
    held: claims.Claim,
    traceparent: str | None,
) -> PaymentIntentOut:
    existing = await payments.by_key(session, key)
    if existing is not None:
        # Recorded before claims existed (migration 0004): its row is the answer.
        if (existing.amount, existing.currency) != (amount, currency):
            raise ConflictError(detail=claims.MISMATCH)
        await claims.complete(session, held, {"payment_intent_id": existing.payment_intent_id})
        return await _recorded(client, existing.payment_intent_id)
    customer_id = await customers.of_user(session, user_id)
    await store.end_reads(session)

    params: PaymentIntentCreateParams = {
        "amount": amount,
        "currency": currency,
        "metadata": {"user_id": str(user_id)},
    }
    if customer_id is not None:
        params["customer"] = customer_id
    intent = await client.v1.payment_intents.create_async(
        params=params, options={"idempotency_key": key}
    )
    payment_id = await payments.insert(
        session,
        user_id=user_id,
        payment_intent_id=intent.id,
        amount=amount,
        currency=currency,
        status=intent.status,
        key=key,
    )
    if payment_id is None:
        winner = await payments.by_key(session, key)
        if winner is not None and winner.payment_intent_id != intent.id:
            # Only after a claim was taken over (LEASE): the recorded intent is the
            # answer, the other stays unconfirmed and unused.
            await claims.complete(session, held, {"payment_intent_id": winner.payment_intent_id})
            return await _recorded(client, winner.payment_intent_id)
        if winner is None:
            await payments.ROWS.adopt_key(session, intent.id, key)
        await claims.complete(session, held, {"payment_intent_id": intent.id})
        return _out(intent)
    await emit(
        session,
        settings,
        events.intent_created(
            settings.kafka.topics,
            payment_id=payment_id,
            user_id=user_id,
            payment_intent_id=intent.id,
            amount=amount,
            currency=currency,
            status=intent.status,
            traceparent=traceparent,
        ),
    )
    await claims.complete(session, held, {"payment_intent_id": intent.id})
    return _out(intent)
