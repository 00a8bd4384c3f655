"""payment-events written by the platform itself. A payment intent's events are keyed
by the intent, a subscription's by the subscription, a customer's by the customer: the
keys Stripe's own events about those objects get (`StripeSnapshotEvent.aggregate` in
`core/stripe/event.py`), so each object's events reach the payment consumer in commit
order.

No consumer of this platform acts on them; they are the payments' record for
downstream consumers, and the payment consumer records them as processed."""

from __future__ import annotations

from core.events.contract import DomainEvent


class CustomerCreated(DomainEvent, frozen=True, kw_only=True):
    """The API created the user's Stripe customer."""

    event_type = "payment.customer_created"
    topic = "payment"
    aggregate_type = "customer"
    key = "customer_id"
    actor = "user_id"

    user_id: int
    customer_id: str


class PaymentIntentCreated(DomainEvent, frozen=True, kw_only=True):
    """The API created a payment intent for the user."""

    event_type = "payment.intent_created"
    topic = "payment"
    aggregate_type = "payment_intent"
    key = "payment_intent_id"
    actor = "user_id"

    payment_id: int
    payment_intent_id: str
    amount: int
    currency: str
    status: str
    user_id: int


class SubscriptionCreated(DomainEvent, frozen=True, kw_only=True):
    """The API subscribed the user to a price or plan."""

    event_type = "payment.subscription_created"
    topic = "payment"
    aggregate_type = "subscription"
    key = "subscription_id"
    actor = "user_id"

    subscription_id: str
    customer_id: str
    price_id: str
    status: str
    user_id: int


class PaymentProcessed(DomainEvent, frozen=True, kw_only=True):
    """The payment consumer saw the payment reach `succeeded` (once per intent: the
    event id follows from the intent)."""

    event_type = "payment.processed"
    topic = "payment"
    aggregate_type = "payment_intent"
    key = "payment_intent_id"
    actor = "user_id"

    payment_id: int
    payment_intent_id: str
    amount: int
    currency: str
    user_id: int
    stripe_event_id: str
