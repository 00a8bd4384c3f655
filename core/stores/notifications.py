"""The notifications table. What the routes read and mark is always scoped to the
owning user, so one user's ids never reach another's rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import Notification

_INSERT_MANY = text(
    """
    INSERT INTO notifications (user_id, kind, title, data, source_event_id)
    SELECT n.user_id, n.kind, n.title, CAST(n.data AS jsonb), n.source_event_id
    FROM unnest(CAST(:user_ids AS bigint[]), CAST(:kinds AS text[]), CAST(:titles AS text[]),
                CAST(:data AS text[]), CAST(:event_ids AS uuid[]))
         WITH ORDINALITY AS n(user_id, kind, title, data, source_event_id, position)
    JOIN users ON users.id = n.user_id
    ORDER BY n.position
    RETURNING user_id
    """
)


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


async def insert_many(
    db_session: AsyncSession,
    user_ids: Sequence[int],
    kinds: Sequence[str],
    titles: Sequence[str],
    data: Sequence[str],
    event_ids: Sequence[uuid.UUID],
) -> set[int]:
    """One notification per position of the lists (`data` as JSON text), in one
    statement; those of users that do not exist are skipped. The ids of the users
    that got theirs."""
    result = await db_session.execute(
        _INSERT_MANY,
        {
            "user_ids": user_ids,
            "kinds": kinds,
            "titles": titles,
            "data": data,
            "event_ids": event_ids,
        },
    )
    return set(result.scalars())
