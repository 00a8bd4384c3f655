"""`stripe.customer.subscription.*`: the subscription's own state."""

from __future__ import annotations

from consumers.handlers.payments.apply import Reported, apply_state
from consumers.handlers.payments.group import handlers
from consumers.registry import HandlerContext, InvalidEvent
from core.stripe import event_types
from core.stripe.event import StripeSnapshotEvent, event_type_of
from core.stripe.objects import Subscription, decode, id_of
from core.stripe.store import subscriptions

MAX_PRICE_ID_CHARS = 255  # subscriptions.price_id


@handlers.handle(StripeSnapshotEvent, *map(event_type_of, event_types.SUBSCRIPTION))
async def subscription_changed(ctx: HandlerContext, event: StripeSnapshotEvent) -> None:
    sub = decode(event.data.object, Subscription, "subscription")
    price_id = sub.price_id()
    if price_id is not None and len(price_id) > MAX_PRICE_ID_CHARS:
        raise InvalidEvent("subscription price id is too long")

    async def insert(user_id: int) -> int | None:
        if price_id is None:
            raise InvalidEvent(f"subscription {sub.id} names no price or plan")
        return await subscriptions.insert(
            ctx.session,
            user_id=user_id,
            subscription_id=sub.id,
            price_id=price_id,
            status=sub.status,
            status_event_created=event.created,
        )

    extra = {} if price_id is None else {"price_id": price_id}
    await apply_state(
        ctx.session,
        subscriptions.ROWS,
        Reported(
            noun="subscription",
            stripe_id=sub.id,
            status=sub.status,
            created=event.created,
            customer_id=id_of(sub.customer),
            metadata=sub.metadata,
        ),
        insert,
        **extra,
    )
