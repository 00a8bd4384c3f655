"""Errors that mean "Postgres is unreachable right now": retried with backoff.

The hot-path queries go straight to asyncpg (relay/outbox_store.py), so asyncpg's own
connection errors count too, not only SQLAlchemy's wrapped ones: missing them once
left the relay's pending watch dead after a Postgres restart (tests/test_relay_outages).
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import OperatorInterventionError
from sqlalchemy.exc import DBAPIError, OperationalError

DB_ERRORS = (
    OperationalError,
    DBAPIError,
    asyncpg.PostgresConnectionError,
    # 57P01 admin shutdown, 57P03 cannot connect now: a restarting server.
    OperatorInterventionError,
    # Client side: "connection is closed", "underlying connection is closed".
    asyncpg.InterfaceError,
    OSError,
    ConnectionError,
)
