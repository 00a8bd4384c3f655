"""user-events: a welcome notification, and the last login time."""

from __future__ import annotations

from consumers.handlers.notify import notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.events.users import UserLoggedIn, UserRegistered
from core.stores import users

handlers = HandlerGroup(consumer="users", topic="user")


@handlers.handle(UserRegistered)
async def welcome(ctx: HandlerContext, event: UserRegistered) -> None:
    notify(
        ctx,
        event.user_id,
        "welcome",
        "Welcome to ConnectIn!",
        {"user_id": event.user_id, "username": event.username},
    )


@handlers.handle(UserLoggedIn)
async def record_login(ctx: HandlerContext, event: UserLoggedIn) -> None:
    at = event.login_at or ctx.event.timestamp
    if not await users.record_login(ctx.session, event.user_id, at):
        raise InvalidEvent(f"user {event.user_id} does not exist")
