"""message-events, keyed by the conversation (`message:<low id>-<high id>` of the two
users): per-conversation order is what a reader sees, and both directions share one
key. Keying by sender would order one user's outgoing messages but could let B's reply
overtake A's message; keying by message would order nothing."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from core.events.contract import DomainEvent

PREVIEW_CHARS = 140


def conversation_id(a: int, b: int) -> str:
    return f"{min(a, b)}-{max(a, b)}"


class MessageSent(DomainEvent, frozen=True, kw_only=True):
    """A user sent a message. The messages consumer notifies the recipient and counts
    it as unread."""

    event_type = "message.sent"
    topic = "message"
    aggregate_type = "message"
    key = "conversation_id"
    actor = "sender_id"

    recipient_id: int
    sender_id: Annotated[int, Meta(description="defaults to the envelope's user_id")]
    message_id: int | None = None
    conversation_id: Annotated[str | None, Meta(description="`<low id>-<high id>`")] = None
    preview: Annotated[str | None, Meta(description=f"the first {PREVIEW_CHARS} characters")] = None
