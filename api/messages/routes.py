"""Direct messages between users."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, QueryParameter

from api import events
from api.deps import Ctx, StatementCtx
from api.errors import invalid
from api.fields import MAX_ID, clean_text
from api.messages.schemas import MessageIn, MessageOut
from api.params import Limit, Offset
from core.db import raw_connection
from core.stores.messages import UnknownRecipient, insert_message_with_event, messages_of

WithUser = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_ID, description="only the conversation with this user")
]


@post("/", status_code=201)
async def send_message(data: JSONBody[MessageIn], statement_ctx: StatementCtx) -> MessageOut:
    """Send a message; emits `message.sent` (with `recipient_id`). Unknown recipient: 404."""
    ctx = statement_ctx
    body = clean_text("body", data.body)
    if data.recipient_id == ctx.principal.id:
        raise invalid("recipient_id", "you cannot message yourself")
    topics, traceparent = ctx.settings.kafka.topics, ctx.traceparent
    try:
        async with raw_connection(ctx.engine) as conn:
            message = await insert_message_with_event(
                conn,
                ctx.principal.id,
                data.recipient_id,
                body,
                lambda message: events.message_sent(topics, message, traceparent),
                shards=ctx.settings.relay.shards,
            )
    except UnknownRecipient as exc:
        raise NotFoundException(detail=str(exc)) from exc
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
