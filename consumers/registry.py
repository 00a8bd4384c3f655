"""Handler registration: which consumer (= consumer group) runs which handlers for
which topic and event types.

A handler module declares a `HandlerGroup` and decorates its handlers; the registry
merges groups by consumer name. Topics are named by their role ("user", "project",
...) and resolved against the settings, so tests and deployments can rename them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from consumers.incoming import Incoming
from core.envelope import Envelope
from core.events.contract import TOPIC_ROLES, EventContract, TopicRole, topic_name
from core.events.errors import InvalidEvent
from core.outbox import NewEvent, StoredEvent, enqueue
from core.settings import Settings, TopicSettings

if TYPE_CHECKING:
    from consumers.effects import Effects

__all__ = [
    "TOPIC_ROLES",
    "ConsumerSpec",
    "Handler",
    "HandlerContext",
    "HandlerGroup",
    "InvalidEvent",
    "Registry",
    "TopicRole",
    "topic_name",
]

C = TypeVar("C", bound=EventContract)


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
ContractHandler = Callable[[HandlerContext, C], Awaitable[None]]


@dataclass
class HandlerGroup:
    """The handlers of one consumer for one topic. The platform's handlers take the
    event decoded into its contract (`handle`); `on` registers a handler of the raw
    envelope (tests use it for handlers that must see every record).

    >>> handlers = HandlerGroup(consumer="projects", topic="project")
    >>> @handlers.handle(ProjectApplied)
    ... async def notify_owner(ctx: HandlerContext, event: ProjectApplied) -> None: ...
    """

    consumer: str
    topic: TopicRole
    handlers: dict[str, list[Handler]] = field(default_factory=dict)
    # The contract each event type is decoded with, for handlers registered by `handle`.
    contracts: dict[str, type[EventContract]] = field(default_factory=dict)

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

    def handle(
        self, contract: type[C], *event_types: str
    ) -> Callable[[ContractHandler[C]], ContractHandler[C]]:
        """Register a handler that gets the event decoded into `contract` (an event
        that does not decode is an InvalidEvent). The event types default to the
        contract's own; a contract for a family of types (Stripe's) names them."""
        types = event_types or (contract.event_type,)
        if contract.topic != self.topic:
            raise ValueError(f"{contract.__name__} is on {contract.topic}, not {self.topic}")
        for event_type in types:
            if not contract.matches(event_type):
                raise ValueError(f"{contract.__name__} does not decode {event_type}")

        def register(handler: ContractHandler[C]) -> ContractHandler[C]:
            async def decoded(ctx: HandlerContext) -> None:
                await handler(ctx, contract.decode(ctx.event))

            decoded.__name__ = handler.__name__
            self.on(*types)(decoded)
            for event_type in types:
                self.contracts[event_type] = contract
            return handler

        return register


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
