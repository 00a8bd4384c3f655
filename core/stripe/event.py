"""Stripe's snapshot event: what the webhook accepts, stores in `stripe_events` and
enqueues as `stripe.<type>` with the whole event, as received, for its `data`; and
what the payment consumer decodes that `data` into."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from core.events.contract import EventContract, topic_name
from core.outbox import NewEvent
from core.settings import TopicSettings
from core.stripe.objects import InvoiceLinks, id_of, metadata_user_id
from core.tables import MAX_BIGINT

PREFIX = "stripe."
# Column widths: stripe_events.event_type and outbox.event_type hold "stripe.<type>",
# outbox.aggregate_type the object's type.
MAX_TYPE_CHARS = 255 - len(PREFIX)
MAX_AGGREGATE_TYPE_CHARS = 64
# The outbox event id of a Stripe event is derived from Stripe's id, so the same Stripe
# event can never be enqueued twice (outbox.event_id is unique) whatever path it takes.
STRIPE_EVENT_NAMESPACE = uuid.UUID("5d0c1e9a-4f7b-4c1e-9a53-2b8f0c6d7e11")


def event_type_of(stripe_type: str) -> str:
    """Our event type for one of Stripe's: `payment_intent.succeeded` is
    `stripe.payment_intent.succeeded`."""
    return PREFIX + stripe_type


class EventData(msgspec.Struct, kw_only=True):
    object: dict[str, Any]


class StripeSnapshotEvent(EventContract, frozen=True, kw_only=True):
    """One of Stripe's v1 snapshot events, verified by the webhook and stored whole:
    `data` is Stripe's event as received (only the fields below are read). The types
    the payment consumer acts on are listed in `core/stripe/event_types.py`."""

    event_type = PREFIX + "<type>"
    topic = "payment"

    object: Literal["event"]
    id: Annotated[str, Meta(min_length=1, max_length=255, description="Stripe's event id")]
    type: Annotated[str, Meta(min_length=1, max_length=MAX_TYPE_CHARS)]
    created: Annotated[int, Meta(ge=0, le=MAX_BIGINT, description="unix seconds")]
    livemode: bool = False
    data: EventData

    @classmethod
    def matches(cls, event_type: str) -> bool:
        return event_type.startswith(PREFIX)

    @classmethod
    def keyed_by(cls) -> str:
        return (
            "the object's `<object>:<id>`; an invoice of a subscription "
            "`subscription:<id>`; else `stripe_event:<event id>`"
        )

    @property
    def outbox_event_id(self) -> uuid.UUID:
        return uuid.uuid5(STRIPE_EVENT_NAMESPACE, self.id)

    def aggregate(self) -> tuple[str, str]:
        """The aggregate the event is ordered under (outbox key, shard, partition).

        A payment intent's events share the key of the API's `payment.intent_created`
        and the consumer's `payment.processed`; a subscription's invoices share their
        subscription's key, so the payment consumer sees them in the order we
        received them.
        """
        obj = self.data.object
        if self.type.startswith("invoice."):
            try:
                subscription = msgspec.convert(obj, InvoiceLinks).subscription_id()
            except msgspec.ValidationError:
                subscription = None
            if subscription is not None:
                return "subscription", subscription
        object_type, object_id = obj.get("object"), id_of(obj)
        if (
            isinstance(object_type, str)
            and 0 < len(object_type) <= MAX_AGGREGATE_TYPE_CHARS
            and object_id is not None
        ):
            return object_type, object_id
        return "stripe_event", self.id

    def user_hint(self) -> int | None:
        """Our user id when the object carries it in metadata; the consumer resolves
        users authoritatively."""
        return metadata_user_id(self.data.object.get("metadata"))


@dataclass(frozen=True)
class ReceivedEvent:
    """A verified delivery: the decoded event and the document exactly as Stripe sent it."""

    event: StripeSnapshotEvent
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def type(self) -> str:
        return self.event.type

    def new_event(self, topics: TopicSettings) -> NewEvent:
        """`stripe.<type>` for the outbox; its data is the whole event as received."""
        aggregate_type, aggregate_id = self.event.aggregate()
        return NewEvent(
            topic=topic_name(topics, StripeSnapshotEvent.topic),
            event_type=event_type_of(self.event.type),
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            data=self.payload,
            user_id=self.event.user_hint(),
            event_id=self.event.outbox_event_id,
            schema_version=StripeSnapshotEvent.schema_version,
        )
