"""The app's status collector (`core.status`, the same code as `connectin status`),
created by a lifespan that also exposes its numbers on this app's /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from litestar import Litestar
from litestar.datastructures import State

from api.metrics import HttpMetrics
from core.settings import Settings
from core.status import StatusCollector
from core.status.prometheus import StatusMetrics


def collector(state: State) -> StatusCollector:
    return cast(StatusCollector, state.ops_status)


@asynccontextmanager
async def ops_status(app: Litestar) -> AsyncIterator[None]:
    """Lifespan (after the database one): the status collector and its Prometheus
    metrics on this app's /metrics."""
    status = StatusCollector(cast(Settings, app.state.settings), app.state.engine)
    app.state.ops_status = status
    metrics = StatusMetrics(status.snapshot)
    registry = cast(HttpMetrics, app.state.http_metrics).registry
    registry.register(metrics)
    try:
        yield
    finally:
        await metrics.close()
        registry.unregister(metrics)
