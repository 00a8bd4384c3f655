"""Stripe's errors as our JSON errors (`{"error", "detail", "stripe"}`), registered on
the payment routes. Nothing stays written when one is raised: every handler calls
Stripe before it writes a row, except its idempotency claim, which it releases.

What the caller can fix is a 4xx (declined card 402, bad id or parameter 400, reused
idempotency key 409); what only we or Stripe can fix is a 502 (our key rejected,
Stripe unreachable, rate limited, Stripe's own 5xx).
"""

from __future__ import annotations

from typing import Any

import stripe
import structlog
from litestar import Request, Response

log = structlog.get_logger(__name__)


def _details(exc: stripe.StripeError) -> dict[str, Any]:
    details: dict[str, Any] = {
        "type": type(exc).__name__,
        "code": exc.code,
        "request_id": exc.request_id,
    }
    param = getattr(exc, "param", None)
    if param:
        details["param"] = param
    return details


def _classify(exc: stripe.StripeError) -> tuple[int, str, str]:
    """(status, error code, detail) for the caller."""
    message = exc.user_message or "Stripe refused the request"
    if isinstance(exc, stripe.CardError):
        return 402, "card_error", message
    if isinstance(exc, stripe.IdempotencyError) or exc.http_status == 409:
        return 409, "idempotency_conflict", message
    if isinstance(exc, stripe.InvalidRequestError):
        return 400, "stripe_invalid_request", message
    if isinstance(exc, stripe.RateLimitError):
        return 502, "stripe_rate_limited", "Stripe is rate limiting requests, retry shortly"
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Our secret key is wrong or lacks a permission: not the caller's doing, and
        # Stripe's message would only confuse them.
        return 502, "stripe_unavailable", "the payment provider rejected our credentials"
    return 502, "stripe_unavailable", "the payment provider is unavailable, retry shortly"


def stripe_error_response(
    request: Request[Any, Any, Any], exc: stripe.StripeError
) -> Response[dict[str, Any]]:
    status, code, detail = _classify(exc)
    details = _details(exc)
    log_method = log.error if status >= 500 else log.info
    log_method(
        "stripe error",
        path=request.url.path,
        status=status,
        http_status=exc.http_status,
        message=exc.user_message,
        **details,
    )
    headers = {"Retry-After": "1"} if status >= 500 else None
    return Response(
        {"error": code, "detail": detail, "stripe": details}, status_code=status, headers=headers
    )
