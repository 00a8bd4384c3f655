"""Bodies of registration, login and the caller's account. `normalize_username` and
`normalize_email` add the checks msgspec cannot express; `fold` is the form
uniqueness and lookups compare."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from api.errors import invalid

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


class RegisterIn(msgspec.Struct):
    username: Username
    email: Email
    password: Password


class LoginIn(msgspec.Struct):
    """Either `email` or `username` (any case, any NFKC-equivalent spelling)."""

    password: Annotated[str, Meta(min_length=1, max_length=128)]
    email: Email | None = None
    username: Annotated[str, Meta(min_length=1, max_length=50)] | None = None


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
