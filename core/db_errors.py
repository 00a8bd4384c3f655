"""Which database errors are worth retrying: the one classification every process uses.

Transient: Postgres is unreachable, restarting, shedding load, or resolved a conflict
by aborting us (connection lost, admin shutdown, cannot connect now, serialization
failure, deadlock, lock or statement timeout, too many connections). The same call
can succeed a moment later, so callers back off and retry.

Permanent: the statement itself is wrong for this database (integrity, data,
syntax, undefined table or column, permission denied...). Retrying repeats the same
error for ever, so callers stop the work it belongs to, loudly.

The relay's hot path calls asyncpg directly and the rest goes through SQLAlchemy, so
both shapes are recognised: SQLAlchemy's wrapper, its adapter error, the asyncpg
error underneath, and asyncpg's own client-side connection errors.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes and codes that describe the moment, not the statement.
TRANSIENT_SQLSTATE_PREFIXES = (
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: too many connections, out of memory, disk full
    "57P",  # operator intervention: admin/crash shutdown, cannot connect now
    "57014",  # query canceled (statement_timeout, pg_cancel_backend)
    "55P03",  # lock not available (lock_timeout)
    "58",  # system error: I/O error
    "25006",  # read-only transaction: a failover to a standby still in recovery
)


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by `exc` or by the error it wraps, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return None


# Everything a database call can raise, of either kind: what callers catch before
# asking is_transient.
DATABASE_ERRORS = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call later can succeed; False for errors the
    statement will meet again however often it is retried."""
    code = sqlstate_of(exc)
    if code is not None:
        return code.startswith(TRANSIENT_SQLSTATE_PREFIXES)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, PoolTimeout):
        # Every pooled connection busy: load, not the statement.
        return True
    inner = _innermost(exc)
    if isinstance(inner, asyncpg.InternalClientError):
        # "cannot switch to state N; another operation is in progress": a FATAL the
        # server sent between two statements (backend terminated, fast shutdown) met
        # the next statement before the socket closed. That connection is gone; a new
        # one succeeds.
        return True
    if isinstance(inner, asyncpg.InterfaceError):
        # "connection is closed" and friends; a ValueError subclass is a bad argument
        # or configuration, and an unsupported feature stays unsupported.
        return not isinstance(
            inner,
            ValueError
            | asyncpg.UnsupportedClientFeatureError
            | asyncpg.UnsupportedServerFeatureError,
        )
    return isinstance(inner, OSError | ConnectionError | TimeoutError)


def _innermost(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        wrapped = getattr(current, "orig", None)
        nxt = wrapped if isinstance(wrapped, BaseException) else current.__cause__
        if nxt is None:
            return current
        current = nxt
    return current
