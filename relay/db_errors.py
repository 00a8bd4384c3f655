"""Errors that mean "Postgres is unreachable right now": retried with backoff."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

DB_ERRORS = (OperationalError, DBAPIError, OSError, ConnectionError)
