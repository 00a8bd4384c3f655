"""The messages table."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import Message


async def add_message(
    db_session: AsyncSession, sender_id: int, recipient_id: int, body: str
) -> Message:
    message = Message(sender_id=sender_id, recipient_id=recipient_id, body=body)
    db_session.add(message)
    await db_session.flush()
    return message


async def messages_of(
    db_session: AsyncSession, me: int, with_user: int | None, limit: int, offset: int
) -> Sequence[Message]:
    """Messages `me` sent or received (only those exchanged with `with_user` if given),
    newest first."""
    if with_user is None:
        mine = or_(Message.sender_id == me, Message.recipient_id == me)
    else:
        mine = or_(
            and_(Message.sender_id == me, Message.recipient_id == with_user),
            and_(Message.sender_id == with_user, Message.recipient_id == me),
        )
    rows = await db_session.scalars(
        select(Message).where(mine).order_by(Message.id.desc()).limit(limit).offset(offset)
    )
    return rows.all()
