"""The operator token check. The operator endpoints answer to it
(`Authorization: Bearer <OPS_TOKEN>`), not to user JWTs: the JWT middleware is told to
skip them (`EXCLUDE_FROM_AUTH`) and this guard checks the token instead. No OPS_TOKEN
configured means the endpoints are off (503), never open."""

from __future__ import annotations

import hmac
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, ServiceUnavailableException
from litestar.handlers.base import BaseRouteHandler

from core.settings import Settings

DISABLED = "operator endpoints are disabled: set OPS_TOKEN to enable them"
REFUSED = "a valid operator token is required (Authorization: Bearer <OPS_TOKEN>)"
AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="connectin-ops"'}


def token_check(connection: ASGIConnection[Any, Any, Any, Any]) -> int:
    """200 for the right token, 401 for a wrong or missing one, 503 when none is set."""
    settings = cast(Settings, connection.app.state.settings)
    expected = settings.api.ops_token
    if not expected:
        return 503
    scheme, _, supplied = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return 401
    # Constant time: the comparison must not reveal how much of a guess was right.
    ok = hmac.compare_digest(supplied.strip().encode(), expected.encode())
    return 200 if ok else 401


def require_ops_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # Litestar runs a router's guards on its automatic OPTIONS handlers too
    # (litestar-org/litestar#2314); OPTIONS names the allowed methods, nothing more,
    # and answered without a token when the guard sat on each handler.
    if connection.scope.get("method") == "OPTIONS":
        return
    verdict = token_check(connection)
    if verdict == 503:
        raise ServiceUnavailableException(DISABLED)
    if verdict == 401:
        raise NotAuthorizedException(REFUSED, headers=AUTHENTICATE)


def requires_ops_token(handler: BaseRouteHandler) -> bool:
    """Whether the guard sits on the handler or on any layer above it."""
    return any(require_ops_token in (layer.guards or ()) for layer in handler.ownership_layers)
