"""Notifications written by handlers, tied to the event that caused them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, literal, select

from consumers.registry import HandlerContext, InvalidEvent
from core.tables import Notification, User


async def notify(
    ctx: HandlerContext, user_id: int, kind: str, title: str, data: dict[str, Any]
) -> None:
    """Fails as InvalidEvent when the user does not exist (no retry can fix that)."""
    rows = select(
        User.id,
        literal(kind),
        literal(title),
        literal(data, Notification.data.type),
        literal(ctx.event.event_id, Notification.source_event_id.type),
    ).where(User.id == user_id)
    result = await ctx.session.execute(
        insert(Notification)
        .from_select(["user_id", "kind", "title", "data", "source_event_id"], rows)
        .returning(Notification.id)
    )
    if result.scalar_one_or_none() is None:
        raise InvalidEvent(f"user {user_id} does not exist")


async def username(ctx: HandlerContext, user_id: int) -> str | None:
    result = await ctx.session.execute(select(User.username).where(User.id == user_id))
    return result.scalar_one_or_none()
