"""The HTTP API: `create_app(settings)` builds it; nothing connects at import.

The engine is created when the app starts (lifespan) and disposed when it stops, so
tests and `connectin api` each build their own app from their own settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State

from api.accounts.routes import AUTH_ROUTER, USERS_ROUTER
from api.auth import jwt_auth
from api.bodies import StrictJSONRequest
from api.csrf import CsrfMiddleware
from api.deps import DEPENDENCIES
from api.errors import EXCEPTION_HANDLERS
from api.messages.routes import ROUTER as MESSAGES_ROUTER
from api.metrics import HttpMetrics, MetricsMiddleware
from api.notifications.routes import ROUTER as NOTIFICATIONS_ROUTER
from api.openapi import correct_document, openapi_config
from api.ops.collector import ops_status
from api.ops.health import ROUTER as HEALTH_ROUTER
from api.ops.routes import ROUTER as OPS_ROUTER
from api.payments.client import stripe_lifespan
from api.payments.routes import ROUTER as PAYMENTS_ROUTER
from api.projects.routes import ROUTER as PROJECTS_ROUTER
from api.ratelimit import LoginThrottle
from core.db import create_engine, session_factory
from core.logging import configure_logging
from core.settings import Settings

log = structlog.get_logger(__name__)

# Public paths served by Litestar's own handlers, which we cannot mark with `opt`.
AUTH_EXCLUDE = ["^/schema"]
CORS_HEADERS = ["Authorization", "Content-Type", "traceparent", "Idempotency-Key"]
# One router per domain package, each declaring its path, tags, guards and dependencies.
ROUTERS = [
    AUTH_ROUTER,
    USERS_ROUTER,
    PROJECTS_ROUTER,
    MESSAGES_ROUTER,
    NOTIFICATIONS_ROUTER,
    HEALTH_ROUTER,
    OPS_ROUTER,
    PAYMENTS_ROUTER,
]


@asynccontextmanager
async def database(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # No pre-ping (a round trip on every request): a connection found broken fails
    # its request with 503 and Retry-After (api/errors.py) and is dropped from the pool.
    engine = create_engine(
        settings.database, application_name="connectin-api", pre_ping=False, keep_overflow=True
    )
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    log.info("api started")
    try:
        yield
    finally:
        # uvicorn runs the lifespan's shutdown only on SIGTERM/SIGINT (graceful stop).
        log.info("api stopped", reason="server shutdown requested (SIGTERM/SIGINT)")
        await engine.dispose()


def cors_config(settings: Settings) -> CORSConfig | None:
    origins = list(settings.api.cors_origins)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=CORS_HEADERS,
        # Browsers refuse credentials with a wildcard origin, so only ask for them
        # when the origins are listed.
        allow_credentials="*" not in origins,
        max_age=600,
    )


def create_app(settings: Settings) -> Litestar:
    http_metrics = HttpMetrics()

    def metrics_outermost(config: AppConfig) -> AppConfig:
        # Runs after the auth config inserted its middleware, so requests rejected by
        # authentication are measured too.
        config.middleware.insert(0, MetricsMiddleware(http_metrics))
        return config

    auth = jwt_auth(settings.auth, exclude=AUTH_EXCLUDE)
    app = Litestar(
        route_handlers=ROUTERS,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        # ops_status needs the engine: it must come after `database`.
        lifespan=[database, ops_status, stripe_lifespan],
        state=State(
            {
                "settings": settings,
                "http_metrics": http_metrics,
                "login_limiter": LoginThrottle(
                    settings.auth.login_attempts_per_minute,
                    settings.auth.login_address_attempts_per_minute,
                ),
            }
        ),
        on_app_init=[auth.on_app_init, metrics_outermost],
        # After authentication (on_app_init puts it first): a bad cookie is a 401.
        middleware=[CsrfMiddleware(settings.api.cors_origins)],
        cors_config=cors_config(settings),
        request_max_body_size=settings.api.max_body_bytes,
        request_class=StrictJSONRequest,
        openapi_config=openapi_config(settings),
        logging_config=None,
        debug=False,
    )
    correct_document(app)
    return app


def app_from_env() -> Litestar:
    """The app of one `connectin api` worker process: uvicorn imports it by name and
    calls it in each worker, so every worker reads the environment itself."""
    # `connectin api` checked the secrets before starting the workers.
    settings = Settings.from_env()
    configure_logging(settings.log_level, process="api")
    return create_app(settings)
