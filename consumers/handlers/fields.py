"""Reading event data defensively: a missing or mistyped field is an InvalidEvent
(parked at once), never a retry loop."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consumers.registry import InvalidEvent
from core.envelope import Envelope


def optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidEvent(f"data.{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise InvalidEvent(f"data.{name} must be an integer, got {value!r}") from None


def required_int(data: dict[str, Any], name: str) -> int:
    value = optional_int(data, name)
    if value is None:
        raise InvalidEvent(f"data.{name} is missing")
    return value


def optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def acting_user(event: Envelope, field: str) -> int:
    """The user a field names, else the envelope's user_id."""
    user_id = optional_int(event.data, field)
    if user_id is None:
        user_id = event.user_id
    if user_id is None:
        raise InvalidEvent(f"neither data.{field} nor user_id is set")
    return user_id


def optional_time(data: dict[str, Any], name: str) -> datetime | None:
    value = optional_str(data, name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"data.{name} is not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"data.{name} has no time zone: {value!r}")
    return parsed
