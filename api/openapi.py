"""The OpenAPI document, corrected to say what the API really does.

Litestar documents its own 400 body (`{status_code, detail, extra}`), only 400 besides
success, and the JWT requirement on every operation. Here, once the routes exist:
every error response has our body (`api.errors`: `{error, detail, errors?}`), each
operation lists every status it can answer, public operations carry no security
requirement, and the operator endpoints name the operator token instead of the JWT.
tests/integration/test_openapi_contract.py runs schemathesis against the live app to hold this
true.

The docs UI is served in development only: its pages load swagger-ui from a public
CDN, and a third-party script on the cookie's origin is not something production
should depend on. Everywhere, the document itself is at /schema/openapi.json.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from litestar import Litestar
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute

from api.auth import EXCLUDE_FROM_AUTH
from api.csrf import BROWSER_JSON_ONLY, SAFE_METHODS
from api.fields import MAX_ID
from api.ops.guards import requires_ops_token
from core.settings import DEVELOPMENT, Settings

ERROR_SCHEMA = "Error"
OPS_SCHEME = "OpsToken"

DESCRIPTIONS = {
    400: "Bad request: a field, parameter or the JSON body is invalid (`errors` says which)",
    401: "Missing, invalid or expired credentials",
    402: "The card was declined",
    403: "Forbidden: not yours, or a cookie-authenticated/login request that is not JSON "
    "from an allowed origin (CSRF)",
    404: "Not found",
    409: "Conflict: already exists, or an Idempotency-Key reused with another request",
    413: "Body larger than API_MAX_BODY_BYTES",
    429: "Too many attempts; see Retry-After",
    502: "The payment provider failed or rejected our credentials; see Retry-After",
    503: "A dependency (the database, Kafka, or OPS_TOKEN unset) is unavailable",
}

_STRIPE_WRITE = {400, 402, 404, 409, 502}
# What a handler itself can answer besides the statuses every route of its kind gets
# (see `statuses`). Keyed by "METHOD path"; tests fail on an operation missing here.
ROUTE_STATUSES: dict[str, set[int]] = {
    "POST /api/v1/auth/register": {409},
    "POST /api/v1/auth/login": {401, 429},
    "GET /api/v1/users/me": set(),
    "GET /api/v1/projects": set(),
    "POST /api/v1/projects": set(),
    "GET /api/v1/projects/{project_id}": {404},
    "GET /api/v1/projects/{project_id}/applications": {403, 404},
    "POST /api/v1/projects/{project_id}/applications": {404, 409},
    "GET /api/v1/messages": set(),
    "POST /api/v1/messages": {404},
    "GET /api/v1/notifications": set(),
    "POST /api/v1/notifications/{notification_id}/read": {404},
    "POST /api/v1/notifications/read-all": set(),
    "GET /health": set(),
    "GET /ready": {503},
    "GET /ops/status": set(),
    "GET /ops/outbox": set(),
    "GET /ops/consumers": set(),
    "GET /ops/dlq": set(),
    "POST /ops/dlq/{dead_letter_id}/replay": {404},
    "POST /api/v1/payments/create-customer": _STRIPE_WRITE,
    "POST /api/v1/payments/create-payment-intent": _STRIPE_WRITE,
    "POST /api/v1/payments/create-subscription": _STRIPE_WRITE,
    "GET /api/v1/payments": set(),
    "GET /api/v1/payments/subscriptions": set(),
    "GET /api/v1/payments/config": set(),
    "POST /api/v1/payments/webhook": {400},
}
# Operations that never touch the database, so cannot answer 503.
NO_DATABASE = {"GET /health", "GET /api/v1/payments/config"}


def openapi_config(settings: Settings) -> OpenAPIConfig:
    plugins: list[OpenAPIRenderPlugin] = [JsonRenderPlugin()]
    if settings.environment == DEVELOPMENT:
        plugins.insert(0, SwaggerRenderPlugin(path="/"))
    return OpenAPIConfig(
        title="ConnectIn API",
        version="1.0.0",
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=plugins,
    )


def _error_schema() -> Schema:
    item = Schema(
        type=OpenAPIType.OBJECT,
        required=["message"],
        properties={
            "message": Schema(type=OpenAPIType.STRING),
            "key": Schema(type=OpenAPIType.STRING, description="the field or parameter"),
            "source": Schema(type=OpenAPIType.STRING, description="body, query, path, header"),
        },
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["error", "detail"],
        properties={
            "error": Schema(type=OpenAPIType.STRING, description="a stable code, e.g. not_found"),
            "detail": Schema(type=OpenAPIType.STRING, description="for humans"),
            "errors": Schema(type=OpenAPIType.ARRAY, items=item, description="on 400 only"),
            "stripe": Schema(
                type=OpenAPIType.OBJECT, description="Stripe's error type, code and request id"
            ),
        },
    )


def _error_response(status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=DESCRIPTIONS[status],
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref=f"#/components/schemas/{ERROR_SCHEMA}")
            )
        },
    )


def statuses(
    key: str, method: str, operation: Operation, public: bool, ops: bool, json_only: bool
) -> set[int]:
    codes = set(ROUTE_STATUSES[key])
    if operation.parameters or operation.request_body:
        codes.add(400)
    if operation.request_body:
        codes.add(413)
    if ops:
        codes |= {401, 503}
    elif not public:
        codes.add(401)
        if method not in SAFE_METHODS:
            codes.add(403)
    if json_only:
        codes.add(403)
    if key not in NO_DATABASE:
        codes.add(503)
    return codes


def _exact_bounds(node: Any) -> None:
    """Litestar writes numeric bounds as floats, and float(2**63 - 1) is 2**63: the
    document would promise one id more than the API accepts."""
    if isinstance(node, Schema):
        for name in ("maximum", "minimum", "exclusive_maximum", "exclusive_minimum"):
            value = getattr(node, name)
            if isinstance(value, float) and value.is_integer():
                setattr(node, name, MAX_ID if value == float(MAX_ID) else int(value))
    if is_dataclass(node) and not isinstance(node, type):
        for item in fields(node):
            _exact_bounds(getattr(node, item.name))
    elif isinstance(node, dict):
        for value in node.values():
            _exact_bounds(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _exact_bounds(value)


def correct_document(app: Litestar) -> None:
    """Rewrite the generated document in place: Litestar builds it once, keeps it,
    and serves (and renders to JSON) that same object."""
    document = app.openapi_schema
    _exact_bounds(document)
    components = document.components
    if not isinstance(components, Components):
        components = document.components = Components()
    components.schemas = {**(components.schemas or {}), ERROR_SCHEMA: _error_schema()}
    components.security_schemes = {
        **(components.security_schemes or {}),
        OPS_SCHEME: SecurityScheme(
            type="http", scheme="bearer", description="the operator token (OPS_TOKEN)"
        ),
    }
    paths = document.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            opt = handler.opt
            ops = requires_ops_token(handler)
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is None:
                    continue
                key = f"{method} {route.path_format}"
                codes = statuses(
                    key,
                    method,
                    operation,
                    public=bool(opt.get(EXCLUDE_FROM_AUTH)),
                    ops=ops,
                    json_only=bool(opt.get(BROWSER_JSON_ONLY)),
                )
                responses: dict[str, Any] = dict(operation.responses or {})
                responses.update({str(code): _error_response(code) for code in sorted(codes)})
                operation.responses = responses
                if ops:
                    operation.security = [{OPS_SCHEME: []}]
                elif opt.get(EXCLUDE_FROM_AUTH):
                    operation.security = []
