"""The platform's handlers. To add some: a module with a `HandlerGroup` (consumer
name, topic role) and `@handlers.handle(Contract)` functions, which get the event
decoded into its contract (`core/events/`), listed in GROUPS."""

from __future__ import annotations

from consumers.handlers import messages, payments, projects, users
from consumers.registry import HandlerGroup, Registry

GROUPS: tuple[HandlerGroup, ...] = (
    users.handlers,
    projects.handlers,
    messages.handlers,
    payments.handlers,
)


def default_registry() -> Registry:
    return Registry(GROUPS)
