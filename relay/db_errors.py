"""The relay's policy for database errors (the classification is core/db_errors.py).

Transient errors are retried with backoff. A permanent one (IntegrityError,
ProgrammingError, DataError, permission denied...) would fail the same way for ever,
so the shard it happened on is parked: its worker stops, the relay keeps the lease so
no other relay spins on the same error, and the error is logged with its SQLSTATE and
counted in connectin_relay_permanent_db_errors_total. Restart the relay once the cause
(a missing migration, a revoked grant) is fixed.
"""

from __future__ import annotations

import structlog

from core.db_errors import is_transient, sqlstate_of
from core.retry import first_line
from relay import metrics

log = structlog.get_logger(__name__)


class ShardParked(RuntimeError):
    """A permanent database error stopped this shard's worker."""


def report(exc: BaseException, what: str, scope: str) -> bool:
    """Log a failed periodic query (metrics, retention, the pending watch); True if it
    is transient. A permanent one is logged as an error and counted, and its caller
    keeps to its own interval rather than hammering the database with it."""
    if is_transient(exc):
        log.warning(what, error=first_line(exc))
        return True
    sqlstate = sqlstate_of(exc) or "none"
    metrics.PERMANENT_DB_ERRORS.labels(scope, sqlstate).inc()
    log.error(f"{what}: permanent database error", sqlstate=sqlstate, error=first_line(exc))
    return False


def park_if_permanent(exc: BaseException, *, shard: int) -> None:
    """Return if `exc` is worth retrying; else log it, count it and raise ShardParked."""
    if is_transient(exc):
        return
    sqlstate = sqlstate_of(exc) or "none"
    metrics.PERMANENT_DB_ERRORS.labels(str(shard), sqlstate).inc()
    log.error(
        "permanent database error, parking shard",
        shard=shard,
        sqlstate=sqlstate,
        error_type=type(exc).__name__,
        error=first_line(exc),
        statement=" ".join(str(getattr(exc, "statement", "") or "").split())[:200] or None,
    )
    raise ShardParked(f"shard {shard} parked: {type(exc).__name__} ({sqlstate})") from exc
