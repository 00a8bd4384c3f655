"""Notifications written by handlers, tied to the event that caused them."""

from __future__ import annotations

from typing import Any

from consumers.registry import HandlerContext
from core.stores import users
from core.stores.users import UserCounter


def notify(ctx: HandlerContext, user_id: int, kind: str, title: str, data: dict[str, Any]) -> None:
    """Written with the batch's other notifications just before its commit; a user
    that does not exist then fails this event as InvalidEvent (no retry can fix that)."""
    ctx.effects.notify(ctx.index, user_id, kind, title, data, ctx.event.event_id)


def count(ctx: HandlerContext, column: UserCounter, user_id: int, delta: int = 1) -> None:
    """Add to one of a user's counters with the batch's other counts, in one statement;
    a user that does not exist fails this event as InvalidEvent."""
    ctx.effects.count(ctx.index, column, user_id, delta)


async def username(ctx: HandlerContext, user_id: int) -> str | None:
    return await users.username(ctx.session, user_id)
