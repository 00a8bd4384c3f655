"""`stripe.customer.subscription.*`: the subscription's own state."""

from __future__ import annotations

import structlog

from consumers.handlers.payments.group import handlers
from consumers.registry import HandlerContext, InvalidEvent
from core.stripe import event_types
from core.stripe.event import StripeSnapshotEvent, event_type_of
from core.stripe.lifecycle import SUBSCRIPTION
from core.stripe.objects import Subscription, decode, id_of
from core.stripe.store import customers, subscriptions

log = structlog.get_logger(__name__)

MAX_PRICE_ID_CHARS = 255  # subscriptions.price_id


@handlers.handle(StripeSnapshotEvent, *map(event_type_of, event_types.SUBSCRIPTION))
async def subscription_changed(ctx: HandlerContext, event: StripeSnapshotEvent) -> None:
    sub = decode(event.data.object, Subscription, "subscription")
    price_id = sub.price_id()
    if price_id is not None and len(price_id) > MAX_PRICE_ID_CHARS:
        raise InvalidEvent("subscription price id is too long")
    session = ctx.session
    row = await subscriptions.ROWS.lock(session, sub.id)
    if row is None:
        user_id = await customers.owner(session, id_of(sub.customer), sub.metadata)
        if user_id is None:
            log.info("subscription of no user of ours, ignored", subscription=sub.id)
            return
        if price_id is None:
            raise InvalidEvent(f"subscription {sub.id} names no price or plan")
        inserted = await subscriptions.insert(
            session,
            user_id=user_id,
            subscription_id=sub.id,
            price_id=price_id,
            status=sub.status,
            status_event_created=event.created,
        )
        if inserted is not None:
            return
        row = await subscriptions.ROWS.lock(session, sub.id)
        if row is None:
            raise RuntimeError(f"subscription {sub.id} vanished after a conflict")
    if not SUBSCRIPTION.supersedes(row.status, row.status_event_created, sub.status, event.created):
        log.info(
            "stale subscription event ignored",
            subscription=sub.id,
            stored=row.status,
            stored_created=row.status_event_created,
            event_status=sub.status,
            event_created=event.created,
        )
        return
    extra = {} if price_id is None else {"price_id": price_id}
    await subscriptions.ROWS.move(session, row.id, sub.status, event.created, **extra)
