"""The payment rows the API reads and writes. Writes run after the Stripe call, in the
request's transaction, together with their outbox event; inserts use ON CONFLICT DO
NOTHING so a duplicate (possible only after an idempotency claim was taken over, see
claims.py) is detected without an error, and the caller then answers with the row
that won."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.payments.webhook import VerifiedEvent
from core.tables import Payment, StripeCustomer, StripeEvent, Subscription, User

# States after which Stripe never changes the object again.
FINISHED_PAYMENT = ("succeeded", "canceled")
FINISHED_SUBSCRIPTION = ("canceled", "incomplete_expired")


@dataclass(frozen=True)
class Contact:
    username: str
    email: str


@dataclass(frozen=True)
class RecordedPayment:
    id: int
    payment_intent_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class RecordedSubscription:
    subscription_id: str
    price_id: str
    status: str


async def end_reads(session: AsyncSession) -> None:
    """Close the read-only transaction before calling Stripe, so no pooled connection
    sits idle in a transaction for the length of an HTTP call. Nothing was written;
    the writes after the call start a new transaction, which the request commits."""
    await session.rollback()


async def user_contact(session: AsyncSession, user_id: int) -> Contact | None:
    result = await session.execute(select(User.username, User.email).where(User.id == user_id))
    row = result.one_or_none()
    return None if row is None else Contact(*row)


async def customer_of(session: AsyncSession, user_id: int) -> str | None:
    result = await session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.user_id == user_id)
    )
    return result


async def insert_customer(session: AsyncSession, user_id: int, customer_id: str) -> bool:
    inserted = await session.scalar(
        insert(StripeCustomer)
        .values(user_id=user_id, customer_id=customer_id)
        .on_conflict_do_nothing()
        .returning(StripeCustomer.user_id)
    )
    return inserted is not None


async def payment_by_key(session: AsyncSession, key: str) -> RecordedPayment | None:
    result = await session.execute(
        select(Payment.id, Payment.payment_intent_id, Payment.amount, Payment.currency).where(
            Payment.idempotency_key == key
        )
    )
    row = result.one_or_none()
    return None if row is None else RecordedPayment(*row)


async def finished_payments(session: AsyncSession, user_id: int, amount: int, currency: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(
            Payment.user_id == user_id,
            Payment.amount == amount,
            Payment.currency == currency,
            Payment.status.in_(FINISHED_PAYMENT),
        )
    )
    return int(count or 0)


async def insert_payment(
    session: AsyncSession,
    *,
    user_id: int,
    payment_intent_id: str,
    amount: int,
    currency: str,
    status: str,
    key: str,
) -> int | None:
    """The new row's id, or None when the intent or the key is already recorded."""
    return await session.scalar(
        insert(Payment)
        .values(
            user_id=user_id,
            payment_intent_id=payment_intent_id,
            amount=amount,
            currency=currency,
            status=status,
            idempotency_key=key,
        )
        .on_conflict_do_nothing()
        .returning(Payment.id)
    )


async def adopt_payment_key(session: AsyncSession, payment_intent_id: str, key: str) -> None:
    """The payment consumer recorded this intent from a webhook before our insert: give
    its row our key, so the next retry finds it."""
    await session.execute(
        update(Payment)
        .where(Payment.payment_intent_id == payment_intent_id, Payment.idempotency_key.is_(None))
        .values(idempotency_key=key)
    )


async def subscription_by_key(session: AsyncSession, key: str) -> RecordedSubscription | None:
    result = await session.execute(
        select(Subscription.subscription_id, Subscription.price_id, Subscription.status).where(
            Subscription.idempotency_key == key
        )
    )
    row = result.one_or_none()
    return None if row is None else RecordedSubscription(*row)


async def finished_subscriptions(session: AsyncSession, user_id: int, price_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(
            Subscription.user_id == user_id,
            Subscription.price_id == price_id,
            Subscription.status.in_(FINISHED_SUBSCRIPTION),
        )
    )
    return int(count or 0)


async def insert_subscription(
    session: AsyncSession,
    *,
    user_id: int,
    subscription_id: str,
    price_id: str,
    status: str,
    key: str,
) -> int | None:
    return await session.scalar(
        insert(Subscription)
        .values(
            user_id=user_id,
            subscription_id=subscription_id,
            price_id=price_id,
            status=status,
            idempotency_key=key,
        )
        .on_conflict_do_nothing()
        .returning(Subscription.id)
    )


async def adopt_subscription_key(session: AsyncSession, subscription_id: str, key: str) -> None:
    await session.execute(
        update(Subscription)
        .where(
            Subscription.subscription_id == subscription_id,
            Subscription.idempotency_key.is_(None),
        )
        .values(idempotency_key=key)
    )


async def insert_stripe_event(session: AsyncSession, event: VerifiedEvent) -> bool:
    """False when the Stripe event id is already stored. Race-safe: of concurrent
    deliveries of one event, the others wait on the unique index for the first to
    commit, then find the conflict and insert nothing."""
    inserted = await session.scalar(
        insert(StripeEvent)
        .values(
            stripe_event_id=event.id,
            event_type=event.type,
            livemode=event.livemode,
            stripe_created=event.created,
            payload=event.payload,
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.stripe_event_id])
        .returning(StripeEvent.id)
    )
    return inserted is not None
