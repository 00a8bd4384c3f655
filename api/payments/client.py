"""The Stripe client: `stripe.StripeClient` with its async methods over HTTPX, pointed
at `STRIPE_API_BASE` when set (localstripe in tests and `connectin up`).

One client per app, created when the app starts and closed when it stops, so its
connection pool is reused across requests and nothing connects at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

import stripe
from litestar import Litestar
from litestar.datastructures import State

from core.settings import Settings, StripeSettings

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses

# Stripe answers in well under a second; a stuck call must not hold a request (and
# its worker) for the library's default 80 s.
TIMEOUT_S = 20.0
# Safe because every write carries an idempotency key: a retried POST cannot create
# a second object at Stripe.
NETWORK_RETRIES = 2


def build_client(settings: StripeSettings, http_client: stripe.HTTPClient) -> stripe.StripeClient:
    base_addresses: BaseAddresses | None = (
        {"api": settings.api_base.rstrip("/")} if settings.api_base else None
    )
    return stripe.StripeClient(
        settings.secret_key,
        http_client=http_client,
        base_addresses=base_addresses,
        max_network_retries=NETWORK_RETRIES,
    )


@asynccontextmanager
async def stripe_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Litestar lifespan hook: `app.state.stripe` for the app's lifetime."""
    settings = cast(Settings, app.state.settings)
    http_client = stripe.HTTPXClient(timeout=TIMEOUT_S)
    app.state.stripe = build_client(settings.stripe, http_client)
    try:
        yield
    finally:
        # The stripe package leaves this one method unannotated.
        await http_client.close_async()  # type: ignore[no-untyped-call]


def provide_stripe(state: State) -> stripe.StripeClient:
    return cast(stripe.StripeClient, state.stripe)
