"""Direct messages between users."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, QueryParameter
from sqlalchemy import and_, or_, select

from api import events
from api.deps import AppSettings, Caller, DbSession, TraceParent
from api.errors import invalid
from api.routes.params import Limit, Offset
from api.schemas import MAX_ID, MessageIn, MessageOut, clean_text
from core.tables import Message, User

WithUser = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_ID, description="only the conversation with this user")
]


def message_out(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        sender_id=message.sender_id,
        recipient_id=message.recipient_id,
        body=message.body,
        created_at=message.created_at,
    )


@post("/api/v1/messages", status_code=201, tags=["messages"])
async def send_message(
    data: JSONBody[MessageIn],
    db_session: DbSession,
    principal: Caller,
    settings: AppSettings,
    traceparent: TraceParent,
) -> MessageOut:
    """Send a message; emits `message.sent` (with `recipient_id`). Unknown recipient: 404."""
    body = clean_text("body", data.body)
    if data.recipient_id == principal.id:
        raise invalid("recipient_id", "you cannot message yourself")
    if await db_session.scalar(select(User.id).where(User.id == data.recipient_id)) is None:
        raise NotFoundException(detail=f"user {data.recipient_id} not found")
    message = Message(sender_id=principal.id, recipient_id=data.recipient_id, body=body)
    db_session.add(message)
    await db_session.flush()
    await events.emit(
        db_session, settings, events.message_sent(settings.kafka.topics, message, traceparent)
    )
    return message_out(message)


@get("/api/v1/messages", tags=["messages"])
async def list_messages(
    db_session: DbSession,
    principal: Caller,
    with_user: WithUser = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[MessageOut]:
    """Messages the caller sent or received, newest first."""
    me = principal.id
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
    return [message_out(m) for m in rows]


ROUTES = [send_message, list_messages]
