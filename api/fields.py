"""Field types and text checks the bodies of every domain share. msgspec enforces
types and lengths while Litestar decodes a body (a failure is a 400 naming the field);
`clean_text` adds what msgspec cannot express."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from api.errors import invalid
from core.tables import MAX_BIGINT

# Larger ids would be a database error rather than a 404.
MAX_ID = MAX_BIGINT

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]


def clean_text(field: str, value: str, *, allow_empty: bool = False) -> str:
    # Postgres text cannot hold NUL; catching it here makes it a 400, not a 500.
    if "\x00" in value:
        raise invalid(field, "must not contain NUL characters")
    text = value.strip()
    if not text and not allow_empty:
        raise invalid(field, "must not be blank")
    return text
