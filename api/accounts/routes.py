"""Registration, login and the caller's own account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import JSONBody

from api import events
from api.accounts.schemas import (
    LoginIn,
    RegisterIn,
    TokenOut,
    UserOut,
    fold,
    normalize_email,
    normalize_username,
)
from api.auth import (
    COOKIE_NAME,
    EXCLUDE_FROM_AUTH,
    hash_password,
    issue_token,
    needs_rehash,
    verify_password,
)
from api.csrf import BROWSER_JSON_ONLY
from api.deps import ClientAddress, Ctx, DbEngine, LoginLimiter
from api.errors import CONFLICT_MESSAGES, ConflictError, invalid
from api.passwords import password_problem
from core.stores import users

PUBLIC: dict[str, Any] = {EXCLUDE_FROM_AUTH: True, BROWSER_JSON_ONLY: True}


@post("/register", status_code=201)
async def register(data: JSONBody[RegisterIn], ctx: Ctx) -> UserOut:
    """Create an account; emits `user.registered`. Usernames are unique ignoring case
    and NFKC spelling (`Alice`, `alice` and fullwidth `\uff41lice` are one name), emails
    likewise; a duplicate is a 409. Common, guessable or personal passwords (the
    username, the email): 400. Nothing is written on any refusal."""
    username = normalize_username(data.username)
    email = normalize_email(data.email)
    problem = await password_problem(data.password, username=username, email=email)
    if problem is not None:
        raise invalid("password", problem)
    taken = await users.taken_field(ctx.session, email, username)
    if taken is not None:
        constraint = "uq_users_email" if taken == "email" else "uq_users_username_ci"
        raise ConflictError(detail=CONFLICT_MESSAGES[constraint])
    user = await users.add_user(ctx.session, username, email, await hash_password(data.password))
    await events.emit(
        ctx.session,
        ctx.settings,
        events.user_registered(ctx.settings.kafka.topics, user, ctx.traceparent),
    )
    return msgspec.convert(user, UserOut, from_attributes=True)


def login_name(data: LoginIn) -> tuple[str, str]:
    """(which field, its folded value). Folding needs no validation: a name that
    cannot exist simply matches no account."""
    if (data.email is None) == (data.username is None):
        raise invalid("email", "give either email or username, not both")
    if data.email is not None:
        return "email", fold(data.email)
    return "username", fold(data.username or "")


@post("/login", status_code=200)
async def login(
    data: JSONBody[LoginIn],
    ctx: Ctx,
    db_engine: DbEngine,
    login_limiter: LoginLimiter,
    client_address: ClientAddress,
) -> Response[TokenOut]:
    """Exchange email (or username) and password for a JWT (body and httpOnly
    cookie); emits `user.login`. Throttled per account and per client address, across
    all API processes: 429 with Retry-After."""
    field, name = login_name(data)
    retry_after = await login_limiter.hit(
        db_engine, account=f"{field}:{name}", address=client_address
    )
    if retry_after is not None:
        raise TooManyRequestsException(
            detail="too many login attempts, retry later",
            headers={"Retry-After": str(retry_after)},
        )
    user = await users.user_by_login(ctx.session, field, name)
    verified = await verify_password(user.password_hash if user else None, data.password)
    if user is None or not verified:
        raise NotAuthorizedException(detail=f"invalid {field} or password")
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(data.password)
    now = datetime.now(UTC)
    settings = ctx.settings
    await events.emit(
        ctx.session, settings, events.user_login(settings.kafka.topics, user, now, ctx.traceparent)
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


@get("/me")
async def me(ctx: Ctx) -> UserOut:
    user = await users.user_by_id(ctx.session, ctx.principal.id)
    if user is None:
        # A valid token for an account that no longer exists: make the client log in.
        raise NotAuthorizedException(detail="account not found")
    return msgspec.convert(user, UserOut, from_attributes=True)


AUTH_ROUTER = Router(
    path="/api/v1/auth", route_handlers=[register, login], opt=PUBLIC, tags=["auth"]
)
USERS_ROUTER = Router(path="/api/v1/users", route_handlers=[me], tags=["users"])
