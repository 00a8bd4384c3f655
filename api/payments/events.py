"""The events the payment routes write to the outbox (topic `payment-events`), built
from their contracts (`core/events/payments.py`, `core/stripe/event.py`)."""

from __future__ import annotations

from core.events.payments import CustomerCreated, PaymentIntentCreated, SubscriptionCreated
from core.outbox import NewEvent
from core.settings import TopicSettings
from core.stripe.event import ReceivedEvent


def customer_created(
    topics: TopicSettings, user_id: int, customer_id: str, traceparent: str | None
) -> NewEvent:
    return CustomerCreated(user_id=user_id, customer_id=customer_id).new_event(topics, traceparent)


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
    return PaymentIntentCreated(
        payment_id=payment_id,
        payment_intent_id=payment_intent_id,
        amount=amount,
        currency=currency,
        status=status,
        user_id=user_id,
    ).new_event(topics, traceparent)


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
    return SubscriptionCreated(
        subscription_id=subscription_id,
        customer_id=customer_id,
        price_id=price_id,
        status=status,
        user_id=user_id,
    ).new_event(topics, traceparent)


def stripe_event(topics: TopicSettings, event: ReceivedEvent) -> NewEvent:
    """Stripe's event as `stripe.<type>`, its `data` the whole Stripe event as received."""
    return event.new_event(topics)
