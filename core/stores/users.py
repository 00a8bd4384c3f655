"""The users table: who holds a name, who logs in, who is calling; and the writes the
consumers make to a user (last login, counters)."""

from __future__ import annotations

from sqlalchemy import func, or_, select
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


async def user_exists(db_session: AsyncSession, user_id: int) -> bool:
    return await db_session.scalar(select(User.id).where(User.id == user_id)) is not None
