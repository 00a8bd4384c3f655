"""What every event contract is: a msgspec Struct for the event's `data`, plus the
constants that place the event (type, topic role, aggregate) and the schema version.

Producers build the Struct and turn it into the outbox's `NewEvent` (`new_event`), so
a field can no longer be spelled one way by the API and another by a handler.
Handlers decode the envelope's `data` into the same Struct (`decode`). Decoding is a
tolerant reader: fields it does not know are ignored, and fields with a default may be
absent (producers always write them; events made by hand, by older tools or by tests
need not). A field that does not decode, or a schema version the contract does not
read, is an `InvalidEvent`: permanent, parked at once (architecture invariant 6).

`schema_version` is written into the envelope of every event the contract produces.
A change a reader of the previous version could misread (a renamed or retyped field)
raises it, and `decode` then has to say how the older version reads, because events
written before the change may still sit in the outbox or the topic.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal, Self, get_args

import msgspec

from core.envelope import SCHEMA_VERSION, Envelope
from core.events.errors import InvalidEvent
from core.outbox import NewEvent
from core.settings import TopicSettings

TopicRole = Literal["user", "project", "message", "payment"]
TOPIC_ROLES: tuple[TopicRole, ...] = get_args(TopicRole)


def topic_name(topics: TopicSettings, role: TopicRole) -> str:
    name: str = getattr(topics, role)
    return name


class EventContract(msgspec.Struct, frozen=True, kw_only=True):
    """The `data` of one event type (or family of types). Subclasses set the class
    constants."""

    event_type: ClassVar[str]
    topic: ClassVar[TopicRole]
    # The field naming the acting user, written as the envelope's `user_id` too; a
    # reader takes the envelope's `user_id` when the field is absent (the original
    # integration's events named the user only there).
    actor: ClassVar[str | None] = None
    schema_version: ClassVar[int] = SCHEMA_VERSION

    @classmethod
    def matches(cls, event_type: str) -> bool:
        return event_type == cls.event_type

    @classmethod
    def keyed_by(cls) -> str:
        """The event's Kafka key, in words (docs/events.md)."""
        raise NotImplementedError

    @classmethod
    def decode(cls, envelope: Envelope) -> Self:
        if not cls.matches(envelope.event_type):
            raise InvalidEvent(f"{envelope.event_type} is not a {cls.event_type} event")
        if envelope.schema_version != cls.schema_version:
            raise InvalidEvent(
                f"{envelope.event_type}: unknown schema_version {envelope.schema_version!r}"
                f" (this consumer reads {cls.schema_version})"
            )
        data = envelope.data
        if cls.actor is not None and data.get(cls.actor) is None and envelope.user_id is not None:
            data = {**data, cls.actor: envelope.user_id}
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(f"{envelope.event_type} data: {exc}") from None


class DomainEvent(EventContract, frozen=True, kw_only=True):
    """An event the platform writes from its own Struct: the Struct is the whole data."""

    aggregate_type: ClassVar[str]
    # The field holding the aggregate id: the key is `<aggregate_type>:<that value>`.
    key: ClassVar[str]

    @classmethod
    def keyed_by(cls) -> str:
        return f"`{cls.aggregate_type}:<{cls.key}>`"

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def acting_user(self) -> int | None:
        if self.actor is None:
            return None
        user_id: int | None = getattr(self, self.actor)
        return user_id

    def new_event(
        self,
        topics: TopicSettings,
        traceparent: str | None = None,
        *,
        event_id: uuid.UUID | None = None,
    ) -> NewEvent:
        """This event for the outbox, on its topic, under its aggregate's key."""
        aggregate_id = getattr(self, self.key)
        if aggregate_id is None:
            raise ValueError(f"{self.event_type} needs {self.key}: it is the event's key")
        return NewEvent(
            topic=topic_name(topics, self.topic),
            event_type=self.event_type,
            aggregate_type=self.aggregate_type,
            aggregate_id=str(aggregate_id),
            data=self.to_data(),
            user_id=self.acting_user(),
            traceparent=traceparent,
            schema_version=self.schema_version,
            event_id=event_id or uuid.uuid4(),
        )
