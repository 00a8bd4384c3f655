"""Whether the database answers, for `/ready`."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 2.0


async def database_answers(engine: AsyncEngine) -> bool:
    """`SELECT 1` answered within READY_TIMEOUT_S."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("not ready", error=repr(exc))
        return False
    return True
