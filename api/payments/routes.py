"""Stripe payments under `/api/v1/payments`, on the original integration's paths.

Writes claim their idempotency key first (`api/payments/idempotency.py`,
`api/payments/claims.py`), call Stripe, then commit our rows, their outbox event and
the claim's result in one transaction; a Stripe error becomes a 4xx/502 JSON error,
the claim is released and nothing else is written. The webhook stores
Stripe's events (stripe_events + outbox) and leaves their effects to the payment
consumer (architecture invariant 5).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
import stripe
import structlog
from litestar import Request, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import JSONBody

from api.auth import EXCLUDE_FROM_AUTH
from api.deps import AppSettings, Ctx
from api.events import emit
from api.params import Limit, Offset
from api.payments import events, store
from api.payments.client import provide_stripe
from api.payments.customers import ensure_customer
from api.payments.errors import stripe_error_response
from api.payments.idempotency import ClientKey
from api.payments.intents import create_intent
from api.payments.schemas import (
    ConfigOut,
    CustomerOut,
    PaymentIntentIn,
    PaymentIntentOut,
    PaymentOut,
    SubscriptionCreatedOut,
    SubscriptionIn,
    SubscriptionOut,
    WebhookOut,
)
from api.payments.subscriptions import create_subscription
from api.payments.webhook import WEBHOOK_MAX_BYTES, WebhookRejected, verify
from core.stripe.store.payments import payments_of
from core.stripe.store.subscriptions import subscriptions_of

log = structlog.get_logger(__name__)

PUBLIC: dict[str, Any] = {EXCLUDE_FROM_AUTH: True}
StripeApi: TypeAlias = NamedDependency[stripe.StripeClient]


@post("/create-customer", status_code=200)
async def create_customer(ctx: Ctx, stripe_client: StripeApi) -> CustomerOut:
    """The caller's Stripe customer, created on the first call (metadata.user_id = our
    id); later and concurrent calls return the same one, so no Idempotency-Key is
    needed. Emits `payment.customer_created` once."""
    customer_id, _ = await ensure_customer(
        ctx.session, stripe_client, ctx.settings, ctx.principal.id, ctx.traceparent
    )
    return CustomerOut(customer_id=customer_id)


@post("/create-payment-intent", status_code=200)
async def create_payment_intent(
    data: JSONBody[PaymentIntentIn],
    ctx: Ctx,
    stripe_client: StripeApi,
    idempotency_key: ClientKey = None,
) -> PaymentIntentOut:
    """A PaymentIntent for `amount` (minor units, at most STRIPE_MAX_AMOUNT) in an
    allowed currency; the frontend confirms it with Stripe.js and the client secret.
    Emits `payment.intent_created`. Retried with the same Idempotency-Key (or, without
    one, the same body while the earlier intent is unfinished): the same intent."""
    return await create_intent(ctx, stripe_client, data, idempotency_key)


@post("/create-subscription", status_code=200)
async def create_subscription_route(
    data: JSONBody[SubscriptionIn],
    ctx: Ctx,
    stripe_client: StripeApi,
    idempotency_key: ClientKey = None,
) -> SubscriptionCreatedOut:
    """Subscribe to a price (`price_…`) or legacy plan (`plan_…`). Invoices are charged
    to the customer's default payment method: pass the `pm_…` id Stripe.js created as
    `payment_method` to make it the default. Emits `payment.subscription_created`."""
    return await create_subscription(ctx, stripe_client, data, idempotency_key)


@get("/")
async def list_payments(ctx: Ctx, limit: Limit = 50, offset: Offset = 0) -> list[PaymentOut]:
    """The caller's payments, newest first, in the state the payment consumer applied."""
    rows = await payments_of(ctx.session, ctx.principal.id, limit, offset)
    return msgspec.convert(rows, list[PaymentOut], from_attributes=True)


@get("/subscriptions")
async def list_subscriptions(
    ctx: Ctx, limit: Limit = 50, offset: Offset = 0
) -> list[SubscriptionOut]:
    """The caller's subscriptions, newest first."""
    rows = await subscriptions_of(ctx.session, ctx.principal.id, limit, offset)
    return msgspec.convert(rows, list[SubscriptionOut], from_attributes=True)


@get("/config", opt=PUBLIC)
async def config(settings: AppSettings) -> ConfigOut:
    """The publishable key Stripe.js needs (public by design)."""
    return ConfigOut(publishable_key=settings.stripe.publishable_key)


@post("/webhook", opt=PUBLIC, status_code=200, request_max_body_size=WEBHOOK_MAX_BYTES)
async def webhook(request: Request[Any, Any, Any], ctx: Ctx) -> WebhookOut:
    """Stripe's signed events. Verified, then stored in stripe_events and enqueued as
    `stripe.<type>` in one transaction; a repeated event id answers 2xx and writes
    nothing. Unverifiable, malformed or oversize deliveries: 400, nothing stored."""
    try:
        raw = await request.body()
    except RequestEntityTooLarge:
        # Stripe treats any non-2xx as "retry later"; 400 says the delivery itself is bad.
        raise ClientException(detail=f"body exceeds {WEBHOOK_MAX_BYTES} bytes") from None
    try:
        event = verify(raw, request.headers.get("stripe-signature"), ctx.settings.stripe)
    except WebhookRejected as exc:
        log.warning("stripe webhook rejected", reason=str(exc), bytes=len(raw))
        raise ClientException(detail=str(exc)) from None
    if not await store.insert_stripe_event(ctx.session, event):
        log.info("stripe event already stored", stripe_event_id=event.id, type=event.type)
        return WebhookOut(received=True, duplicate=True)
    await emit(ctx.session, ctx.settings, events.stripe_event(ctx.settings.kafka.topics, event))
    log.info("stripe event stored", stripe_event_id=event.id, type=event.type)
    return WebhookOut(received=True, duplicate=False)


ROUTER = Router(
    path="/api/v1/payments",
    route_handlers=[
        create_customer,
        create_payment_intent,
        create_subscription_route,
        list_payments,
        list_subscriptions,
        config,
        webhook,
    ],
    dependencies={"stripe_client": Provide(provide_stripe, sync_to_thread=False)},
    exception_handlers={stripe.StripeError: stripe_error_response},
    tags=["payments"],
)
