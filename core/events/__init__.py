"""The event contracts: one msgspec Struct per event type, shared by the code that
writes the event to the outbox and the handlers that decode it. `catalog` lists them
all; `docs/events.md` is generated from them (`python -m core.events.doc`)."""

from core.events.contract import DomainEvent, EventContract, TopicRole
from core.events.errors import InvalidEvent

__all__ = ["DomainEvent", "EventContract", "InvalidEvent", "TopicRole"]
