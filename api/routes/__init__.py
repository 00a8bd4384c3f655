"""Route handlers, grouped by resource; `ROUTES` is what the app registers."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from api.routes import auth, health, messages, notifications, projects, users

ROUTES: list[ControllerRouterHandler] = [
    *auth.ROUTES,
    *users.ROUTES,
    *projects.ROUTES,
    *messages.ROUTES,
    *notifications.ROUTES,
    *health.ROUTES,
]
