"""Request and response bodies. msgspec enforces types and lengths while Litestar
decodes the body (a failure is a 400 naming the field); `clean_text` and
`normalize_email` add the checks msgspec cannot express."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from api.bodies import anchored
from api.errors import invalid

MAX_ID = 2**63 - 1  # BIGINT; larger ids would be a database error rather than a 404

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
Username = Annotated[str, Meta(min_length=3, max_length=50, pattern=anchored(r"[A-Za-z0-9_.-]+"))]
Email = Annotated[str, Meta(min_length=3, max_length=254)]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Title = Annotated[str, Meta(min_length=1, max_length=200)]
LongText = Annotated[str, Meta(max_length=10_000)]
Body = Annotated[str, Meta(min_length=1, max_length=5_000)]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if not _EMAIL.fullmatch(email) or "\x00" in email:
        raise invalid("email", "not a valid email address")
    return email


def clean_text(field: str, value: str, *, allow_empty: bool = False) -> str:
    # Postgres text cannot hold NUL; catching it here makes it a 400, not a 500.
    if "\x00" in value:
        raise invalid(field, "must not contain NUL characters")
    text = value.strip()
    if not text and not allow_empty:
        raise invalid(field, "must not be blank")
    return text


class RegisterIn(msgspec.Struct):
    username: Username
    email: Email
    password: Password


class LoginIn(msgspec.Struct):
    email: Email
    password: Annotated[str, Meta(min_length=1, max_length=128)]


class ProjectIn(msgspec.Struct):
    title: Title
    description: LongText = ""


class ApplicationIn(msgspec.Struct):
    cover_letter: LongText = ""


class MessageIn(msgspec.Struct):
    recipient_id: Id
    body: Body


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


class UserOut(msgspec.Struct):
    id: int
    username: str
    email: str
    created_at: datetime
    last_login_at: datetime | None = None
    projects_count: int = 0
    unread_messages: int = 0


class ProjectOut(msgspec.Struct):
    id: int
    owner_id: int
    title: str
    description: str
    created_at: datetime


class ApplicationOut(msgspec.Struct):
    id: int
    project_id: int
    applicant_id: int
    cover_letter: str
    created_at: datetime


class MessageOut(msgspec.Struct):
    id: int
    sender_id: int
    recipient_id: int
    body: str
    created_at: datetime


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


class StatusOut(msgspec.Struct):
    status: str
