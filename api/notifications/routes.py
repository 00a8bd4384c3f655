"""The caller's notifications (written by the consumers) and marking them read."""

from __future__ import annotations

import msgspec
from litestar import Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery

from api.deps import Ctx
from api.notifications.schemas import NotificationOut, NotificationsOut, ReadAllOut
from api.params import Limit, Offset, PathId
from core.stores import notifications


@get("/")
async def list_notifications(
    ctx: Ctx,
    unread_only: FromQuery[bool] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> NotificationsOut:
    """Newest first, with the total number still unread."""
    caller = ctx.principal.id
    rows = await notifications.newest_notifications(ctx.session, caller, unread_only, limit, offset)
    items = msgspec.convert(rows, list[NotificationOut], from_attributes=True)
    unread = await notifications.unread_count(ctx.session, caller)
    return NotificationsOut(items=items, unread_count=unread)


@post("/{notification_id:int}/read", status_code=200)
async def mark_read(notification_id: PathId, ctx: Ctx) -> NotificationOut:
    """Idempotent: a notification already read keeps its first read time. Another
    user's notification is a 404, so ids of others' notifications are not revealed."""
    notification = await notifications.mark_read(ctx.session, ctx.principal.id, notification_id)
    if notification is None:
        raise NotFoundException(detail=f"notification {notification_id} not found")
    return msgspec.convert(notification, NotificationOut, from_attributes=True)


@post("/read-all", status_code=200)
async def mark_all_read(ctx: Ctx) -> ReadAllOut:
    marked = await notifications.mark_all_read(ctx.session, ctx.principal.id)
    unread = await notifications.unread_count(ctx.session, ctx.principal.id)
    return ReadAllOut(marked=marked, unread_count=unread)


ROUTER = Router(
    path="/api/v1/notifications",
    route_handlers=[list_notifications, mark_read, mark_all_read],
    tags=["notifications"],
)
