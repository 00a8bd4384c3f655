"""The notifications table. What the routes read and mark is always scoped to the
owning user, so one user's ids never reach another's rows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import Notification


async def unread_count(db_session: AsyncSession, user_id: int) -> int:
    count = await db_session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def newest_notifications(
    db_session: AsyncSession, user_id: int, unread_only: bool, limit: int, offset: int
) -> Sequence[Notification]:
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    rows = await db_session.scalars(
        query.order_by(Notification.id.desc()).limit(limit).offset(offset)
    )
    return rows.all()


async def mark_read(
    db_session: AsyncSession, user_id: int, notification_id: int
) -> Notification | None:
    """The notification, read now unless it already was; None if the user has none
    with that id."""
    return await db_session.scalar(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id)
        .values(read_at=func.coalesce(Notification.read_at, func.now()))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )


async def mark_all_read(db_session: AsyncSession, user_id: int) -> int:
    """How many were unread (and are read now)."""
    result = await db_session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())
