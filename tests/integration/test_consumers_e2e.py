"""End to end through every process: register through the API, the relay publishes
the outbox row, the users consumer writes the welcome notification, and the API shows
it. The request's traceparent reaches the consumer's log lines.

How fast is measured, not asserted (machines are noisy; timing assertions make flaky
tests): the test prints the times, and `python -m bench e2e` reports percentiles."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from core.lifecycle import StopSignal
from core.settings import Settings
from relay.service import Relay
from tests.support.api import api_client, bearer, login, register
from tests.support.consumers import consumer_settings, running_consumers

WARM_UP_S = 30.0
VISIBLE_WITHIN_S = 10.0


async def welcome_visible(client: httpx.AsyncClient, token: str, timeout_s: float) -> float:
    """Seconds until the welcome notification is listed (and counted unread)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        response = await client.get("/api/v1/notifications", headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        if any(n["kind"] == "welcome" for n in body["items"]):
            assert body["unread_count"] == 1
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no welcome notification after {timeout_s}s")


async def test_registration_reaches_the_notifications_api(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = consumer_settings(settings, "e2e")
    relay_stop = StopSignal()
    relay = asyncio.create_task(Relay(s, clean_db, relay_stop).run())
    try:
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            async with running_consumers(s, clean_db), api_client(s) as client:
                # The first registration also waits for topics, leadership and group
                # assignment; the ones after it are measured.
                first = await register(client)
                await welcome_visible(client, await login(client, first["email"]), WARM_UP_S)
                timings = []
                trace_ids = []
                for _ in range(3):
                    trace_id = secrets.token_hex(16)
                    trace_ids.append(trace_id)
                    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
                    registered_at = time.monotonic()
                    user = await register(client, headers={"traceparent": traceparent})
                    token = await login(client, user["email"])
                    await welcome_visible(client, token, VISIBLE_WITHIN_S)
                    timings.append(time.monotonic() - registered_at)
    finally:
        relay_stop.stop("test over")
        await asyncio.wait_for(relay, 30)

    print(f"\nregister -> welcome visible: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")
    consumer_traces = {
        line.get("trace_id")
        for line in logs
        if line.get("consumer") == "users" and line.get("event_type") == "user.registered"
    }
    assert set(trace_ids) <= consumer_traces
