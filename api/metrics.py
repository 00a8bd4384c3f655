"""HTTP metrics for `/metrics`.

A middleware of our own rather than Litestar's PrometheusMiddleware: Litestar's
records an exception that escapes an inner middleware (a 401 from authentication)
with status 200, and we want every answered request counted with its real status.
The metrics live in a registry per app, so apps built by tests do not share counts.
With several workers (`connectin api --workers N`), each is a process of its own and a
scrape reaches one of them: every worker then keeps its counts in files of one
directory (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, set by the
command: api/worker_metrics.py) and `/metrics` adds every worker's up, dead workers'
included, so counters never go back. The process collectors (CPU, memory of one
worker) are left out in that mode.

Metrics (labels `method`, `route` = the route template, `status`):
- `connectin_api_http_requests_total` (counter)
- `connectin_api_http_request_duration_seconds` (histogram)
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("method", "route", "status")


class HttpMetrics:
    def __init__(self) -> None:
        self._http = CollectorRegistry()
        # Collectors computed on demand (the status numbers), the same from any worker.
        self.registry = CollectorRegistry()
        self._all_workers: CollectorRegistry | None = None
        # prometheus_client picked its value class at import, from its variable: files
        # in a directory shared by the workers, or memory.
        if values.ValueClass is not values.MutexValue:
            self._all_workers = CollectorRegistry()
            MultiProcessCollector(self._all_workers)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "connectin_api_http_requests_total",
            "HTTP requests answered by the API.",
            LABELS,
            registry=self._http,
        )
        self.latency = Histogram(
            "connectin_api_http_request_duration_seconds",
            "Time from receiving the request to sending the last body byte.",
            LABELS,
            buckets=BUCKETS,
            registry=self._http,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> bytes:
        if self._all_workers is not None:
            return generate_latest(self._all_workers) + generate_latest(self.registry)
        # The default registry carries the process/platform collectors and anything
        # other modules register globally.
        own = generate_latest(self._http) + generate_latest(self.registry)
        return own + generate_latest(REGISTRY)


class MetricsMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: HttpMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        start = time.perf_counter()
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_record_status)
        except HTTPException as exc:
            # Raised by an outer-layer middleware (authentication); the app's
            # exception handler turns it into a response with this status.
            status = exc.status_code
            raise
        finally:
            route = str(scope.get("path_template") or "unmatched")
            method = str(scope.get("method", "GET"))
            self.metrics.observe(method, route, status, time.perf_counter() - start)
