"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

MAX_BACKOFF_S = 30.0
MAX_UNAVAILABLE_BACKOFF_S = 5.0

_UNAVAILABLE = (
    OSError,  # includes ConnectionRefusedError and TimeoutError at connect
    PoolTimeout,
    OperationalError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


def database_unavailable(exc: BaseException) -> bool:
    """Postgres is down or unreachable: not the event's fault, so waiting for it does
    not use up the event's attempts (parking it would need Postgres anyway)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _UNAVAILABLE)


def backoff_s(base_ms: int, attempt: int, cap_s: float = MAX_BACKOFF_S) -> float:
    """Exponential: base, 2x base, 4x base, ... after attempts 1, 2, 3, ..."""
    return float(min(base_ms / 1000 * 2 ** max(attempt - 1, 0), cap_s))
