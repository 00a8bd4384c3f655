"""The messages table."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import next_id
from core.outbox import InsertWithEvent, NewEvent, insert_with_event
from core.tables import Message

RECIPIENT_FOREIGN_KEY = "fk_messages_recipient_id_users"
_INSERT_WITH_EVENT = InsertWithEvent.of(
    """
    INSERT INTO messages (id, sender_id, recipient_id, body) VALUES ($1, $2, $3, $4)
    RETURNING created_at
    """,
    domain_params=4,
)


class UnknownRecipient(LookupError):
    def __init__(self, recipient_id: int) -> None:
        super().__init__(f"user {recipient_id} not found")
        self.recipient_id = recipient_id


async def insert_message_with_event(
    conn: asyncpg.Connection,
    sender_id: int,
    recipient_id: int,
    body: str,
    event_of: Callable[[Message], NewEvent],
    *,
    shards: int,
) -> Message:
    """The message row and its event (`event_of` the message, which has everything but
    `created_at` set) in one statement on `conn`, outside any transaction. An unknown
    recipient is the recipient's foreign key failing (UnknownRecipient): no lookup
    first, and no window in which the recipient could go between lookup and insert."""
    message = Message(
        id=await next_id(conn, "messages"),
        sender_id=sender_id,
        recipient_id=recipient_id,
        body=body,
    )
    try:
        row, _ = await insert_with_event(
            conn,
            _INSERT_WITH_EVENT,
            (message.id, sender_id, recipient_id, body),
            event_of(message),
            shards=shards,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name == RECIPIENT_FOREIGN_KEY:
            raise UnknownRecipient(recipient_id) from exc
        raise
    message.created_at = row["created_at"]
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
