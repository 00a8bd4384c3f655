"""message-events: the recipient gets a notification and one more unread message."""

from __future__ import annotations

from consumers.handlers.fields import acting_user, optional_int, optional_str, required_int
from consumers.handlers.notify import count, notify, username
from consumers.registry import HandlerContext, HandlerGroup

handlers = HandlerGroup(consumer="messages", topic="message")


@handlers.on("message.sent")
async def notify_recipient(ctx: HandlerContext) -> None:
    data = ctx.event.data
    recipient_id = required_int(data, "recipient_id")
    sender_id = acting_user(ctx.event, "sender_id")
    sender = (
        optional_str(data, "sender_username")
        or await username(ctx, sender_id)
        or f"user {sender_id}"
    )
    notify(
        ctx,
        recipient_id,
        "message.received",
        f"New message from {sender}",
        {"message_id": optional_int(data, "message_id"), "sender_id": sender_id},
    )
    count(ctx, "unread_messages", recipient_id)
