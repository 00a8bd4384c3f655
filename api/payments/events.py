"""The events the payment routes write to the outbox (topic `payment-events`).

Keys: a payment intent's events are keyed by the intent, a subscription's by the
subscription, a customer's by the customer, the same keys the webhook uses for
Stripe's own events about those objects (`webhook.aggregate_of`), so each object's
events reach the payment consumer in commit order.
"""

from __future__ import annotations

from api.payments.webhook import VerifiedEvent, aggregate_of, user_hint
from core.outbox import NewEvent
from core.settings import TopicSettings

CUSTOMER = "customer"
PAYMENT_INTENT = "payment_intent"
SUBSCRIPTION = "subscription"


def customer_created(
    topics: TopicSettings, user_id: int, customer_id: str, traceparent: str | None
) -> NewEvent:
    return NewEvent(
        topic=topics.payment,
        event_type="payment.customer_created",
        aggregate_type=CUSTOMER,
        aggregate_id=customer_id,
        data={"user_id": user_id, "customer_id": customer_id},
        user_id=user_id,
        traceparent=traceparent,
    )


def intent_created(
    topics: TopicSettings,
    *,
    payment_id: int,
    user_id: int,
    payment_intent_id: str,
    amount: int,
    currency: str,
    status: str,
    traceparent: str | None,
) -> NewEvent:
    return NewEvent(
        topic=topics.payment,
        event_type="payment.intent_created",
        aggregate_type=PAYMENT_INTENT,
        aggregate_id=payment_intent_id,
        data={
            "payment_id": payment_id,
            "payment_intent_id": payment_intent_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "user_id": user_id,
        },
        user_id=user_id,
        traceparent=traceparent,
    )


def subscription_created(
    topics: TopicSettings,
    *,
    user_id: int,
    subscription_id: str,
    customer_id: str,
    price_id: str,
    status: str,
    traceparent: str | None,
) -> NewEvent:
    return NewEvent(
        topic=topics.payment,
        event_type="payment.subscription_created",
        aggregate_type=SUBSCRIPTION,
        aggregate_id=subscription_id,
        data={
            "subscription_id": subscription_id,
            "customer_id": customer_id,
            "price_id": price_id,
            "status": status,
            "user_id": user_id,
        },
        user_id=user_id,
        traceparent=traceparent,
    )


def stripe_event(topics: TopicSettings, event: VerifiedEvent) -> NewEvent:
    """Stripe's event as `stripe.<type>`, its `data` the whole Stripe event as received."""
    aggregate_type, aggregate_id = aggregate_of(event)
    return NewEvent(
        topic=topics.payment,
        event_type=f"stripe.{event.type}",
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        data=event.payload,
        user_id=user_hint(event),
        event_id=event.outbox_event_id,
    )
