"""Liveness, readiness and Prometheus metrics; all public."""

from __future__ import annotations

from typing import Any, cast

from litestar import Response, Router, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import EXCLUDE_FROM_AUTH
from api.errors import error_response
from api.metrics import HttpMetrics
from api.ops.readiness import database_answers
from api.ops.schemas import StatusOut


@get("/health")
async def health() -> StatusOut:
    """The process is up and serving; says nothing about its dependencies."""
    return StatusOut(status="ok")


@get("/ready")
async def ready(state: State) -> Response[Any]:
    """200 when the database answers `SELECT 1` within 2 s, else 503."""
    if not await database_answers(cast(AsyncEngine, state.engine)):
        return error_response(503, "database unreachable")
    return Response(StatusOut(status="ready"))


@get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus text format: this app's HTTP metrics plus the process collectors."""
    http_metrics = cast(HttpMetrics, state.http_metrics)
    return Response(http_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


ROUTER = Router(
    path="/", route_handlers=[health, ready, metrics], opt={EXCLUDE_FROM_AUTH: True}, tags=["ops"]
)
