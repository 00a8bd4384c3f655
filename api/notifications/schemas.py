"""Bodies of the notification routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class NotificationOut(msgspec.Struct):
    id: int
    kind: str
    title: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationsOut(msgspec.Struct):
    items: list[NotificationOut]
    unread_count: int


class ReadAllOut(msgspec.Struct):
    marked: int
    unread_count: int
