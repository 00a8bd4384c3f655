"""Cross-site request forgery: what a browser may send on its user's behalf.

Login sets the JWT as a cookie, which the browser attaches to any request to our
origin, including a form or a `text/plain` fetch from another site (SameSite=Lax
stops most, not all: same-site subdomains, top-level navigations). Such requests
cannot carry `Content-Type: application/json` or an `Authorization` header without a
CORS preflight, which only our allowed origins pass. So an unsafe request that relies
on the cookie must be JSON and, when the browser names its `Origin`, come from an
allowed one; else 403. Login and registration get the same rule without a cookie, so
another site cannot log a victim into the attacker's account (login CSRF).

Requests with an `Authorization` header (bearer tokens, scripts, the operator token)
and public routes such as the signed Stripe webhook are not affected.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import COOKIE_NAME, EXCLUDE_FROM_AUTH

# Route opt: a public route that still takes only JSON from browsers (login, register).
BROWSER_JSON_ONLY = "browser_json_only"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
JSON = "application/json"


def csrf_problem(
    connection: ASGIConnection[Any, Any, Any, Any], origins: frozenset[str]
) -> str | None:
    """Why this request is refused, or None when it may go on."""
    content_type = connection.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != JSON:
        return (
            f"requests authenticated by the login cookie, and logins, must send "
            f"Content-Type: {JSON} (scripts can use the Authorization header instead)"
        )
    origin = connection.headers.get("origin")
    if origin is None or origin in origins:
        return None
    # The frontend served by this API itself: its origin is our host, whatever
    # scheme a TLS-terminating proxy hides from us.
    host = connection.headers.get("host")
    if host and urlsplit(origin).netloc == host:
        return None
    return f"Origin {origin!r} is not allowed to send requests with the login cookie"


class CsrfMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(origins)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        if scope.get("method") not in SAFE_METHODS and self._applies(connection):
            problem = csrf_problem(connection, self.origins)
            if problem is not None:
                raise PermissionDeniedException(detail=problem)
        await next_app(scope, receive, send)

    @staticmethod
    def _applies(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        if "authorization" in connection.headers:
            return False
        opt = connection.route_handler.opt
        if opt.get(EXCLUDE_FROM_AUTH):
            return bool(opt.get(BROWSER_JSON_ONLY))
        return COOKIE_NAME in connection.cookies
