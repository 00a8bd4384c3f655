"""user-events: a welcome notification, and the last login time."""

from __future__ import annotations

from sqlalchemy import func, update

from consumers.handlers.fields import acting_user, optional_time
from consumers.handlers.notify import notify
from consumers.registry import HandlerContext, HandlerGroup, InvalidEvent
from core.tables import User

handlers = HandlerGroup(consumer="users", topic="user")


@handlers.on("user.registered")
async def welcome(ctx: HandlerContext) -> None:
    user_id = acting_user(ctx.event, "user_id")
    notify(
        ctx,
        user_id,
        "welcome",
        "Welcome to ConnectIn!",
        {"user_id": user_id, "username": ctx.event.data.get("username")},
    )


@handlers.on("user.login")
async def record_login(ctx: HandlerContext) -> None:
    user_id = acting_user(ctx.event, "user_id")
    at = optional_time(ctx.event.data, "login_at") or ctx.event.timestamp
    # GREATEST skips NULL: the first login sets it, an older one never wins.
    result = await ctx.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(last_login_at=func.greatest(User.last_login_at, at))
        .returning(User.id)
    )
    if result.scalar_one_or_none() is None:
        raise InvalidEvent(f"user {user_id} does not exist")
