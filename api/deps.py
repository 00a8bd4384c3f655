"""Dependencies injected into handlers by name (Litestar `Provide`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias, cast

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.security.jwt import Token
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth import Principal
from api.client_address import client_address
from api.ratelimit import LoginThrottle
from api.tracing import valid_traceparent
from core.settings import Settings

# Handler parameters name their dependency explicitly (Litestar 2.23+ deprecates
# inferring it from the parameter name alone).
DbSession: TypeAlias = NamedDependency[AsyncSession]
AppSettings: TypeAlias = NamedDependency[Settings]
Caller: TypeAlias = NamedDependency[Principal]
TraceParent: TypeAlias = NamedDependency[str | None]
LoginLimiter: TypeAlias = NamedDependency[LoginThrottle]
DbEngine: TypeAlias = NamedDependency[AsyncEngine]
ClientAddress: TypeAlias = NamedDependency[str]


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """One session (one transaction) per request: committed when the handler returned
    normally, rolled back when it raised, so a request never leaves half its rows.

    Litestar runs the code after `yield` once the response body is serialized but
    before it is sent, so a failing commit still turns into an error response.
    """
    sessions = cast(async_sessionmaker[AsyncSession], state.sessions)
    async with sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def provide_settings(state: State) -> Settings:
    return cast(Settings, state.settings)


def provide_login_limiter(state: State) -> LoginThrottle:
    return cast(LoginThrottle, state.login_limiter)


def provide_engine(state: State) -> AsyncEngine:
    return cast(AsyncEngine, state.engine)


def provide_client_address(request: Request[Any, Any, Any], state: State) -> str:
    settings = cast(Settings, state.settings)
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers, settings.api)


def provide_principal(request: Request[Principal, Token, Any]) -> Principal:
    return request.user


def provide_traceparent(request: Request[Any, Any, Any]) -> str | None:
    return valid_traceparent(request.headers.get("traceparent"))


DEPENDENCIES = {
    "db_session": Provide(provide_db_session),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "login_limiter": Provide(provide_login_limiter, sync_to_thread=False),
    "db_engine": Provide(provide_engine, sync_to_thread=False),
    "client_address": Provide(provide_client_address, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "traceparent": Provide(provide_traceparent, sync_to_thread=False),
}
