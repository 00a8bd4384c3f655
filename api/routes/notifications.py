"""The caller's notifications (written by the consumers) and marking them read."""

from __future__ import annotations

from litestar import get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Caller, DbSession
from api.routes.params import Limit, Offset, PathId
from api.schemas import NotificationOut, NotificationsOut, ReadAllOut
from core.tables import Notification


def notification_out(n: Notification) -> NotificationOut:
    return NotificationOut(
        id=n.id,
        kind=n.kind,
        title=n.title,
        data=n.data,
        created_at=n.created_at,
        read_at=n.read_at,
    )


async def _unread_count(db_session: AsyncSession, user_id: int) -> int:
    count = await db_session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


@get("/api/v1/notifications", tags=["notifications"])
async def list_notifications(
    db_session: DbSession,
    principal: Caller,
    unread_only: FromQuery[bool] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> NotificationsOut:
    """Newest first, with the total number still unread."""
    query = select(Notification).where(Notification.user_id == principal.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    rows = await db_session.scalars(
        query.order_by(Notification.id.desc()).limit(limit).offset(offset)
    )
    items = [notification_out(n) for n in rows]
    return NotificationsOut(items=items, unread_count=await _unread_count(db_session, principal.id))


@post("/api/v1/notifications/{notification_id:int}/read", status_code=200, tags=["notifications"])
async def mark_read(
    notification_id: PathId, db_session: DbSession, principal: Caller
) -> NotificationOut:
    """Idempotent: a notification already read keeps its first read time. Another
    user's notification is a 404, so ids of others' notifications are not revealed."""
    notification = await db_session.scalar(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == principal.id)
        .values(read_at=func.coalesce(Notification.read_at, func.now()))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    if notification is None:
        raise NotFoundException(detail=f"notification {notification_id} not found")
    return notification_out(notification)


@post("/api/v1/notifications/read-all", status_code=200, tags=["notifications"])
async def mark_all_read(db_session: DbSession, principal: Caller) -> ReadAllOut:
    result = await db_session.execute(
        update(Notification)
        .where(Notification.user_id == principal.id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )
    marked = len(result.all())
    return ReadAllOut(marked=marked, unread_count=await _unread_count(db_session, principal.id))


ROUTES = [list_notifications, mark_read, mark_all_read]
