"""user-events, keyed by the user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from core.events.contract import DomainEvent

UserId = Annotated[int, Meta(description="the user; defaults to the envelope's user_id")]


class UserRegistered(DomainEvent, frozen=True, kw_only=True):
    """A person registered. The users consumer welcomes them."""

    event_type = "user.registered"
    topic = "user"
    aggregate_type = "user"
    key = "user_id"
    actor = "user_id"

    user_id: UserId
    username: str | None = None
    email: str | None = None


class UserLoggedIn(DomainEvent, frozen=True, kw_only=True):
    """A user logged in. The users consumer keeps their latest login time."""

    event_type = "user.login"
    topic = "user"
    aggregate_type = "user"
    key = "user_id"
    actor = "user_id"

    user_id: UserId
    username: str | None = None
    login_at: (
        Annotated[
            datetime,
            Meta(tz=True, description="ISO-8601 with zone; defaults to the envelope's timestamp"),
        ]
        | None
    ) = None
