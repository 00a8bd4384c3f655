"""Request and response bodies. msgspec enforces types and lengths while Litestar
decodes the body (a failure is a 400 naming the field); `clean_text`,
`normalize_username` and `normalize_email` add the checks msgspec cannot express."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from api.errors import invalid

MAX_ID = 2**63 - 1  # BIGINT; larger ids would be a database error rather than a 404

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
# The pattern is checked after NFKC normalisation (normalize_username), so a fullwidth
# "\uff41lice" (U+FF41 = fullwidth a) is the same name as "alice" rather than a 400.
Username = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=50,
        description="3-50 of A-Z a-z 0-9 _ . - after NFKC; unique ignoring case",
    ),
]
Email = Annotated[str, Meta(min_length=3, max_length=254)]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Title = Annotated[str, Meta(min_length=1, max_length=200)]
LongText = Annotated[str, Meta(max_length=10_000)]
Body = Annotated[str, Meta(min_length=1, max_length=5_000)]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,50}")
MAX_EMAIL = 254


def fold(value: str) -> str:
    """The form two spellings of one name share: compatibility characters (fullwidth,
    ligatures) replaced by NFKC, then case folded. Uniqueness and lookups use it."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def normalize_username(value: str) -> str:
    """The username as stored and shown: NFKC, case kept. Unique ignoring case (the
    index is on lower(username), which for these ASCII names is the casefold)."""
    username = unicodedata.normalize("NFKC", value)
    if not _USERNAME.fullmatch(username):
        raise invalid("username", "3-50 characters, each a letter A-Z, a digit, _ . or -")
    return username


def normalize_email(value: str) -> str:
    """Emails are stored folded (see `fold`): the unique constraint on the column is
    then uniqueness of the normalised form."""
    email = fold(value)
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email) or "\x00" in email:
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
    """Either `email` or `username` (any case, any NFKC-equivalent spelling)."""

    password: Annotated[str, Meta(min_length=1, max_length=128)]
    email: Email | None = None
    username: Annotated[str, Meta(min_length=1, max_length=50)] | None = None


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
