"""Liveness, readiness and Prometheus metrics; all public."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import structlog
from litestar import Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import EXCLUDE_FROM_AUTH
from api.errors import error_response
from api.metrics import HttpMetrics
from api.schemas import StatusOut

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 2.0
PUBLIC: dict[str, Any] = {EXCLUDE_FROM_AUTH: True}


@get("/health", opt=PUBLIC, tags=["ops"])
async def health() -> StatusOut:
    """The process is up and serving; says nothing about its dependencies."""
    return StatusOut(status="ok")


@get("/ready", opt=PUBLIC, tags=["ops"])
async def ready(state: State) -> Response[Any]:
    """200 when the database answers `SELECT 1` within 2 s, else 503."""
    engine = cast(AsyncEngine, state.engine)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("not ready", error=repr(exc))
        return error_response(503, "database unreachable")
    return Response(StatusOut(status="ready"))


@get("/metrics", opt=PUBLIC, include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus text format: this app's HTTP metrics plus the process collectors."""
    http_metrics = cast(HttpMetrics, state.http_metrics)
    return Response(http_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


ROUTES = [health, ready, metrics]
