"""The users table: who holds a name, who logs in, who is calling; and the writes the
consumers make to a user (last login, counters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import User


async def taken_field(db_session: AsyncSession, email: str, username: str) -> str | None:
    """ "email" or "username" when an account already has this email or this username
    ignoring case, else None."""
    holder = (
        await db_session.execute(
            select(User.email, User.username).where(
                or_(User.email == email, func.lower(User.username) == username.lower())
            )
        )
    ).first()
    if holder is None:
        return None
    return "email" if holder.email == email else "username"


async def add_user(db_session: AsyncSession, username: str, email: str, password_hash: str) -> User:
    user = User(username=username, email=email, password_hash=password_hash)
    db_session.add(user)
    # A concurrent registration that passed `taken_field` fails here on the unique
    # constraint; the error handler turns that IntegrityError into the same 409.
    await db_session.flush()
    return user


async def user_by_login(db_session: AsyncSession, field: str, name: str) -> User | None:
    """The account whose folded `field` ("email" or "username") is `name`."""
    # Usernames are ASCII once valid, so lower() in Postgres is the fold; the query
    # uses the unique index on lower(username).
    match = User.email == name if field == "email" else func.lower(User.username) == name
    return (await db_session.execute(select(User).where(match))).scalar_one_or_none()


async def user_by_id(db_session: AsyncSession, user_id: int) -> User | None:
    return await db_session.get(User, user_id)


@dataclass(frozen=True)
class Contact:
    username: str
    email: str


async def user_contact(db_session: AsyncSession, user_id: int) -> Contact | None:
    result = await db_session.execute(select(User.username, User.email).where(User.id == user_id))
    row = result.one_or_none()
    return None if row is None else Contact(*row)


async def username(db_session: AsyncSession, user_id: int) -> str | None:
    result = await db_session.execute(select(User.username).where(User.id == user_id))
    return result.scalar_one_or_none()


async def record_login(db_session: AsyncSession, user_id: int, at: datetime) -> bool:
    """False when the user does not exist."""
    # GREATEST skips NULL: the first login sets it, an older one never wins.
    result = await db_session.execute(
        update(User)
        .where(User.id == user_id)
        .values(last_login_at=func.greatest(User.last_login_at, at))
        .returning(User.id)
    )
    return result.scalar_one_or_none() is not None


UserCounter = Literal["projects_count", "unread_messages"]


def _count_statement(column: UserCounter) -> Any:
    # The CTE locks the rows in id order before any is updated (see add_to_counters).
    return text(
        f"""
        WITH locked AS (
            SELECT id FROM users WHERE id = ANY(CAST(:ids AS bigint[]))
            ORDER BY id FOR NO KEY UPDATE
        ), delta AS (
            SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:deltas AS bigint[]))
                AS d(id, delta)
        )
        UPDATE users SET {column} = users.{column} + delta.delta
        FROM delta JOIN locked USING (id)
        WHERE users.id = delta.id
        RETURNING users.id
        """
    )


_COUNT = {column: _count_statement(column) for column in ("projects_count", "unread_messages")}


async def add_to_counters(
    db_session: AsyncSession, column: UserCounter, ids: Sequence[int], deltas: Sequence[int]
) -> set[int]:
    """Add `deltas[i]` to `column` of user `ids[i]`, in one statement; the ids of the
    users that exist (and were counted).

    Transactions that count the same users side by side would deadlock if each locked
    its rows in its own order; this statement locks them in id order first."""
    result = await db_session.execute(_COUNT[column], {"ids": ids, "deltas": deltas})
    return set(result.scalars())
