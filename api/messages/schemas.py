"""Bodies of the message routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from api.fields import Id

Body = Annotated[str, Meta(min_length=1, max_length=5_000)]


class MessageIn(msgspec.Struct):
    recipient_id: Id
    body: Body


class MessageOut(msgspec.Struct):
    id: int
    sender_id: int
    recipient_id: int
    body: str
    created_at: datetime
