"""Handler registration: which consumer (= consumer group) runs which handlers for
which topic and event types.

A handler module declares a `HandlerGroup` and decorates its handlers; the registry
merges groups by consumer name. Topics are named by their role ("user", "project",
...) and resolved against the settings, so tests and deployments can rename them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from consumers.incoming import Incoming
from core.envelope import Envelope
from core.outbox import NewEvent, StoredEvent, enqueue
from core.settings import Settings, TopicSettings

if TYPE_CHECKING:
    from consumers.effects import Effects

TopicRole = Literal["user", "project", "message", "payment"]
TOPIC_ROLES: tuple[TopicRole, ...] = get_args(TopicRole)


class InvalidEvent(ValueError):
    """The event can never be handled as it is (bad or missing data): dead-letter it
    at once instead of retrying."""


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets: the event, and the session of the one transaction that
    also records its batch's events as processed. Handlers never commit. Writes that
    many records of a batch make alike (notifications, counters) go through
    `effects`, which makes them once for the batch just before the commit."""

    consumer: str
    event: Envelope
    message: Incoming
    session: AsyncSession
    settings: Settings
    effects: Effects
    # The record's position in its batch, so a deferred write that fails names it.
    index: int

    async def emit(self, event: NewEvent) -> StoredEvent:
        """A follow-up event, committed with this handler's effects (outbox)."""
        if event.traceparent is None and self.message.traceparent is not None:
            event = replace(event, traceparent=self.message.traceparent)
        return await enqueue(self.session, event, shards=self.settings.relay.shards)


Handler = Callable[[HandlerContext], Awaitable[None]]


@dataclass
class HandlerGroup:
    """The handlers of one consumer for one topic.

    >>> handlers = HandlerGroup(consumer="payments", topic="payment")
    >>> @handlers.on("payment.processed")
    ... async def record(ctx: HandlerContext) -> None: ...
    """

    consumer: str
    topic: TopicRole
    handlers: dict[str, list[Handler]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.topic not in TOPIC_ROLES:
            raise ValueError(f"unknown topic role {self.topic!r}; one of {TOPIC_ROLES}")

    def on(self, *event_types: str) -> Callable[[Handler], Handler]:
        if not event_types:
            raise ValueError("a handler needs at least one event type")

        def register(handler: Handler) -> Handler:
            for event_type in event_types:
                self.handlers.setdefault(event_type, []).append(handler)
            return handler

        return register


def topic_name(topics: TopicSettings, role: TopicRole) -> str:
    name: str = getattr(topics, role)
    return name


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group: its topics and its handlers per (topic role, event type)."""

    name: str
    handlers: dict[tuple[TopicRole, str], tuple[Handler, ...]]

    @property
    def roles(self) -> tuple[TopicRole, ...]:
        return tuple(sorted({role for role, _ in self.handlers}))

    def topics(self, topics: TopicSettings) -> dict[str, TopicRole]:
        return {topic_name(topics, role): role for role in self.roles}

    def handlers_for(self, role: TopicRole, event_type: str) -> tuple[Handler, ...]:
        return self.handlers.get((role, event_type), ())


class Registry:
    """All consumers of a process, built from handler groups."""

    def __init__(self, groups: Iterable[HandlerGroup] = ()) -> None:
        self._handlers: dict[str, dict[tuple[TopicRole, str], list[Handler]]] = {}
        for group in groups:
            self.add(group)

    def add(self, group: HandlerGroup) -> None:
        by_key = self._handlers.setdefault(group.consumer, {})
        for event_type, handlers in group.handlers.items():
            by_key.setdefault((group.topic, event_type), []).extend(handlers)

    @property
    def consumers(self) -> list[ConsumerSpec]:
        return [
            ConsumerSpec(name, {key: tuple(hs) for key, hs in handlers.items()})
            for name, handlers in sorted(self._handlers.items())
            if handlers
        ]
