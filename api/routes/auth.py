"""Registration and login."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import JSONBody
from sqlalchemy import or_, select

from api import events
from api.auth import (
    COOKIE_NAME,
    EXCLUDE_FROM_AUTH,
    hash_password,
    issue_token,
    needs_rehash,
    verify_password,
)
from api.csrf import BROWSER_JSON_ONLY
from api.deps import AppSettings, DbSession, LoginLimiter, TraceParent
from api.errors import CONFLICT_MESSAGES, ConflictError
from api.schemas import LoginIn, RegisterIn, TokenOut, UserOut, normalize_email
from core.tables import User

PUBLIC: dict[str, Any] = {EXCLUDE_FROM_AUTH: True, BROWSER_JSON_ONLY: True}


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        projects_count=user.projects_count,
        unread_messages=user.unread_messages,
    )


@post("/api/v1/auth/register", status_code=201, opt=PUBLIC, tags=["auth"])
async def register(
    data: JSONBody[RegisterIn],
    db_session: DbSession,
    settings: AppSettings,
    traceparent: TraceParent,
) -> UserOut:
    """Create an account; emits `user.registered`. Duplicate email or username: 409."""
    email = normalize_email(data.email)
    taken = (
        await db_session.execute(
            select(User.email, User.username).where(
                or_(User.email == email, User.username == data.username)
            )
        )
    ).first()
    if taken is not None:
        constraint = "uq_users_email" if taken.email == email else "uq_users_username"
        raise ConflictError(detail=CONFLICT_MESSAGES[constraint])
    user = User(
        username=data.username, email=email, password_hash=await hash_password(data.password)
    )
    db_session.add(user)
    # A concurrent registration that passed the check above fails here on the unique
    # constraint; the error handler turns that IntegrityError into the same 409.
    await db_session.flush()
    await events.emit(
        db_session, settings, events.user_registered(settings.kafka.topics, user, traceparent)
    )
    return user_out(user)


@post("/api/v1/auth/login", status_code=200, opt=PUBLIC, tags=["auth"])
async def login(
    request: Request[Any, Any, Any],
    data: JSONBody[LoginIn],
    db_session: DbSession,
    settings: AppSettings,
    login_limiter: LoginLimiter,
    traceparent: TraceParent,
) -> Response[TokenOut]:
    """Exchange email and password for a JWT (body and httpOnly cookie); emits
    `user.login`. Rate limited per (client address, email): 429 with Retry-After."""
    email = data.email.strip().lower()
    client = request.client.host if request.client else "unknown"
    retry_after = login_limiter.hit((client, email))
    if retry_after is not None:
        raise TooManyRequestsException(
            detail="too many login attempts, retry later",
            headers={"Retry-After": str(retry_after)},
        )
    user = (await db_session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    verified = await verify_password(user.password_hash if user else None, data.password)
    if user is None or not verified:
        raise NotAuthorizedException(detail="invalid email or password")
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(data.password)
    now = datetime.now(UTC)
    await events.emit(
        db_session, settings, events.user_login(settings.kafka.topics, user, now, traceparent)
    )
    token = issue_token(settings.auth, user.id, now=now)
    cookie = Cookie(
        key=COOKIE_NAME,
        value=token,
        max_age=settings.auth.token_ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.api.cookie_secure,
    )
    body = TokenOut(access_token=token, token_type="bearer", expires_in=settings.auth.token_ttl_s)
    return Response(body, cookies=[cookie])


ROUTES = [register, login]
