"""message-events: the recipient gets a notification and one more unread message."""

from __future__ import annotations

from consumers.handlers.notify import count, notify, username
from consumers.registry import HandlerContext, HandlerGroup
from core.events.messages import MessageSent

handlers = HandlerGroup(consumer="messages", topic="message")


@handlers.handle(MessageSent)
async def notify_recipient(ctx: HandlerContext, event: MessageSent) -> None:
    sender_id = event.sender_id
    sender = await username(ctx, sender_id) or f"user {sender_id}"
    notify(
        ctx,
        event.recipient_id,
        "message.received",
        f"New message from {sender}",
        {"message_id": event.message_id, "sender_id": sender_id},
    )
    count(ctx, "unread_messages", event.recipient_id)
