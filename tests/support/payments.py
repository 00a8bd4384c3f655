"""Helpers for the payment tests: a real localstripe server per test, our Stripe client
pointed at localstripe, Stripe-signed deliveries, the payment routes' paths and rows,
and whether the payment consumer caught up.

localstripe is the only Stripe stand-in: our code talks to it through the stripe
package exactly as it would talk to Stripe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.payments.client import build_client
from core.lifecycle import StopSignal
from core.settings import Settings
from relay.service import Relay
from tests.support.consumers import consumer_settings, running_consumers
from tests.support.kafka import Published, read_committed
from tests.support.ports import free_port

WEBHOOK_PATH = "/api/v1/payments/webhook"
INTENT = "/api/v1/payments/create-payment-intent"
CUSTOMER = "/api/v1/payments/create-customer"
SUBSCRIPTION = "/api/v1/payments/create-subscription"
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class LocalStripe:
    base_url: str
    log_path: Path
    state_path: Path


def _wait_until_listening(base_url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"localstripe exited with {proc.returncode}")
        try:
            httpx.get(
                f"{base_url}/v1/customers", headers={"Authorization": "Bearer sk_test_x"}, timeout=1
            )
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"localstripe did not answer on {base_url}")


@pytest.fixture
def localstripe() -> Iterator[LocalStripe]:
    """A fresh localstripe on a free port with a state file of its own (see
    devenv/localstripe_server.py), stopped after the test."""
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="localstripe-"))
    log_path, state_path = directory / "localstripe.log", directory / "state.pickle"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "devenv.localstripe_server", str(state_path)),
                *("--port", str(port), "--from-scratch"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_listening(base_url, proc)
        yield LocalStripe(base_url=base_url, log_path=log_path, state_path=state_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def payment_settings(settings: Settings, tag: str, stripe_base: str = "") -> Settings:
    """Isolated topics (consumer tests) and this test's Stripe: localstripe, a secret of
    its own."""
    s = consumer_settings(settings, tag)
    return replace(
        s,
        stripe=replace(
            s.stripe, api_base=stripe_base, webhook_secret=f"whsec_{secrets.token_hex(16)}"
        ),
    )


@pytest.fixture
def ls_settings(settings: Settings, localstripe: LocalStripe) -> Settings:
    """payment_settings on this test's localstripe."""
    return payment_settings(settings, "payments", localstripe.base_url)


async def register_webhook(stripe_base: str, api_base: str, secret: str) -> None:
    """localstripe's own configuration endpoint (what `connectin up` calls)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stripe_base}/_config/webhooks/{uuid.uuid4().hex}",
            json={"url": api_base + WEBHOOK_PATH, "secret": secret},
        )
        response.raise_for_status()


@asynccontextmanager
async def stripe_client(s: Settings) -> AsyncIterator[stripe.StripeClient]:
    """The client the API builds, for the test to act as Stripe.js / the dashboard."""
    http_client = stripe.HTTPXClient(timeout=20)
    try:
        yield build_client(s.stripe, http_client)
    finally:
        await http_client.close_async()  # type: ignore[no-untyped-call]


# --- Stripe-signed deliveries (for the signature matrix and ordering tests) ----------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Stripe's v1 scheme: HMAC-SHA256 of `<timestamp>.<body>` with the endpoint secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, body: bytes, *, timestamp: int | None = None, scheme: str = "v1"
) -> dict[str, str]:
    t = int(time.time()) if timestamp is None else timestamp
    return {
        "Stripe-Signature": f"t={t},{scheme}={signature(secret, t, body)}",
        "Content-Type": "application/json",
    }


async def deliver(
    http: httpx.AsyncClient, s: Settings, body: bytes, *, timestamp: int | None = None
) -> httpx.Response:
    """`body` posted to the webhook, signed with `s`'s endpoint secret as Stripe signs it."""
    headers = signed_headers(s.stripe.webhook_secret, body, timestamp=timestamp)
    return await http.post(WEBHOOK_PATH, content=body, headers=headers)


def event_body(
    event_type: str, obj: dict[str, Any], *, created: int, event_id: str | None = None
) -> bytes:
    """A v1 snapshot event shaped like Stripe's (a test fixture, never used by our code)."""
    event = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def intent_object(
    intent_id: str, status: str, *, user_id: int, amount: int = 2500, currency: str = "usd"
) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "status": status,
        "customer": None,
        "metadata": {"user_id": str(user_id)},
    }


def subscription_object(
    subscription_id: str, status: str, *, user_id: int, plan: str = "plan_gold"
) -> dict[str, Any]:
    return {
        "id": subscription_id,
        "object": "subscription",
        "status": status,
        "customer": "cus_unknown",
        "metadata": {"user_id": str(user_id)},
        "items": {"object": "list", "data": [{"id": "si_1", "plan": {"id": plan}}]},
    }


# --- database helpers -------------------------------------------------------------


async def count(engine: AsyncEngine, table: str, where: str = "true", **params: Any) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
        return int(result.scalar_one())


async def payment_rows(engine: AsyncEngine) -> dict[str, int]:
    """What the payment routes write: our rows of Stripe's objects and payment events."""
    return {
        table: await count(engine, table)
        for table in ("stripe_customers", "payments", "subscriptions")
    } | {"payment events": await count(engine, "outbox", "topic LIKE 'payment-events%'")}


async def status_of(engine: AsyncEngine, table: str, column: str, object_id: str) -> str | None:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT status FROM {table} WHERE {column} = :id"), {"id": object_id}
        )
        value: str | None = result.scalar_one_or_none()
        return value


@asynccontextmanager
async def running_pipeline(s: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    """The relay and the consumers in this process: outbox -> Kafka -> handlers."""
    stop = StopSignal()
    relay = asyncio.create_task(Relay(s, engine, stop).run())
    try:
        async with running_consumers(s, engine):
            yield
    finally:
        stop.stop("test over")
        await asyncio.wait_for(relay, 30)


def processed_events_in_kafka(s: Settings) -> list[Published]:
    """Every committed `payment.processed` on the payment topic (read_committed)."""
    published = read_committed(s, [s.kafka.topics.payment])
    return [p for p in published if p.envelope["event_type"] == "payment.processed"]


async def payments_consumed(engine: AsyncEngine, s: Settings, events: int | None = None) -> bool:
    """The payment consumer applied every event the outbox holds for `s`'s payment
    topic, and there is at least one (with `events`: exactly that many)."""
    produced = await count(engine, "outbox", "topic = :topic", topic=s.kafka.topics.payment)
    consumed = await count(engine, "processed_events", "consumer = 'payments'")
    return produced > 0 and consumed == produced and events in (None, produced)
