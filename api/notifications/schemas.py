"""Bodies of the notification routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from core.tables import Notification


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


def notification_out(n: Notification) -> NotificationOut:
    return NotificationOut(
        id=n.id,
        kind=n.kind,
        title=n.title,
        data=n.data,
        created_at=n.created_at,
        read_at=n.read_at,
    )
