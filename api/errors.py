"""One JSON error shape for every failure: `{"error": <code>, "detail": <message>}`.

Bad input must never surface as a 500 (architecture invariant 6), so database errors
caused by the request (constraint races, out-of-range values) are mapped to 4xx here
as the last line of defence behind the handlers' own checks.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.db_errors import is_transient, sqlstate_of

log = structlog.get_logger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

# Unique constraints a client can hit, by the names the MetaData naming convention gives.
CONFLICT_MESSAGES = {
    "uq_users_email": "email is already registered",
    "uq_users_username_ci": "username is already taken",
    "uq_project_applications_project_id": "you have already applied to this project",
}


class ConflictError(HTTPException):
    status_code = HTTP_409_CONFLICT


def error_response(
    status: int, detail: Any, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"error": ERROR_CODES.get(status, "error"), "detail": detail}
    body.update(extra)
    return Response(body, status_code=status, headers=headers)


def invalid(field: str, message: str) -> ValidationException:
    """A 400 for a check msgspec cannot express, shaped like Litestar's own."""
    return ValidationException(
        detail=f"invalid {field}: {message}", extra=[{"key": field, "message": message}]
    )


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else []
        return error_response(status, exc.detail, errors=errors)
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(status, exc.detail, headers=headers or None)


def _constraint_of(exc: Exception) -> str:
    """asyncpg's error names it; SQLAlchemy's wraps its adapter's, which wraps asyncpg's."""
    if isinstance(exc, asyncpg.PostgresError):
        error: object = exc
    else:
        error = getattr(getattr(exc, "orig", None), "__cause__", None)
    return str(getattr(error, "constraint_name", "") or "")


def _database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """From SQLAlchemy (sessions) or straight from asyncpg (one-statement writes,
    core.db.raw_connection): the same status for the same SQLSTATE."""
    state = sqlstate_of(exc) or ""
    constraint = _constraint_of(exc)
    if state == "23505":
        return error_response(
            HTTP_409_CONFLICT, CONFLICT_MESSAGES.get(constraint, "resource already exists")
        )
    if state == "23503":
        return error_response(HTTP_404_NOT_FOUND, "a referenced resource does not exist")
    if state.startswith(("22", "23")):
        return error_response(HTTP_400_BAD_REQUEST, "a value is invalid or out of range")
    if is_transient(exc):
        return _unavailable(request, exc)
    return _internal_error(request, exc)


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return error_response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "the database is unavailable, retry shortly",
        headers={"Retry-After": "1"},
    )


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", method=request.method, path=request.url.path, exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: _http_error,
    DBAPIError: _database_error,
    asyncpg.PostgresError: _database_error,
    asyncpg.InterfaceError: _database_error,
    asyncpg.InternalClientError: _database_error,
    # asyncpg raises plain OSError subclasses when it cannot connect at all.
    ConnectionError: _unavailable,
    TimeoutError: _unavailable,
    PoolTimeoutError: _unavailable,
    Exception: _internal_error,
}
