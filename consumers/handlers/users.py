"""user-events: a welcome notification, and the last login time."""

from __future__ import annotations

from sqlalchemy import func, update

from consumers.handlers.notify import notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.events.users import UserLoggedIn, UserRegistered
from core.tables import User

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
    # GREATEST skips NULL: the first login sets it, an older one never wins.
    result = await ctx.session.execute(
        update(User)
        .where(User.id == event.user_id)
        .values(last_login_at=func.greatest(User.last_login_at, at))
        .returning(User.id)
    )
    if result.scalar_one_or_none() is None:
        raise InvalidEvent(f"user {event.user_id} does not exist")
