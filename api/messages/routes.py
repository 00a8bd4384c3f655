"""Direct messages between users."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, QueryParameter

from api import events
from api.deps import Ctx
from api.errors import invalid
from api.fields import MAX_ID, clean_text
from api.messages.schemas import MessageIn, MessageOut
from api.params import Limit, Offset
from core.stores.messages import add_message, messages_of
from core.stores.users import user_exists

WithUser = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_ID, description="only the conversation with this user")
]


@post("/", status_code=201)
async def send_message(data: JSONBody[MessageIn], ctx: Ctx) -> MessageOut:
    """Send a message; emits `message.sent` (with `recipient_id`). Unknown recipient: 404."""
    body = clean_text("body", data.body)
    if data.recipient_id == ctx.principal.id:
        raise invalid("recipient_id", "you cannot message yourself")
    if not await user_exists(ctx.session, data.recipient_id):
        raise NotFoundException(detail=f"user {data.recipient_id} not found")
    message = await add_message(ctx.session, ctx.principal.id, data.recipient_id, body)
    await events.emit(
        ctx.session,
        ctx.settings,
        events.message_sent(ctx.settings.kafka.topics, message, ctx.traceparent),
    )
    return msgspec.convert(message, MessageOut, from_attributes=True)


@get("/")
async def list_messages(
    ctx: Ctx,
    with_user: WithUser = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[MessageOut]:
    """Messages the caller sent or received, newest first."""
    rows = await messages_of(ctx.session, ctx.principal.id, with_user, limit, offset)
    return msgspec.convert(rows, list[MessageOut], from_attributes=True)


ROUTER = Router(
    path="/api/v1/messages", route_handlers=[send_message, list_messages], tags=["messages"]
)
