"""Kafka down: webhooks are still answered 2xx, fast, and stored (stripe_events and
the outbox); once Kafka is back, the relay publishes them and the payment consumer
applies them, each once.

"Down" here: the API process is configured with a Kafka address where nothing
listens. The API never talks to Kafka (architecture invariant 1), which this proves: a
single produce or metadata call from a webhook would hang or fail the request. The
broker shared by the other tests is not stopped; the relay outage tests already
prove the relay rides out a real broker restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.api import api_client, register, served_api
from tests.support.consumers import wait_until
from tests.support.payments import (
    count,
    deliver,
    event_body,
    intent_object,
    payment_settings,
    payments_consumed,
    processed_events_in_kafka,
    running_pipeline,
)
from tests.support.ports import free_port

INTENTS = 10
FAST_S = 1.0


async def test_webhooks_are_stored_while_kafka_is_down_and_flow_once_it_is_back(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    s = payment_settings(settings, "kdown")
    nowhere = f"127.0.0.1:{free_port()}"
    api_settings = replace(s, kafka=replace(s.kafka, bootstrap_servers=nowhere))
    async with api_client(api_settings) as client:
        user_id = (await register(client))["id"]
    now = int(time.time())
    deliveries = [
        event_body(
            event_type,
            intent_object(f"pi_down_{n}", status, user_id=user_id, amount=1000 + n),
            created=now + offset,
        )
        for n in range(INTENTS)
        for event_type, status, offset in (
            ("payment_intent.created", "requires_payment_method", 0),
            ("payment_intent.succeeded", "succeeded", 1),
        )
    ]

    async with served_api(api_settings) as api_base, httpx.AsyncClient(base_url=api_base) as http:
        slowest = 0.0
        for body in deliveries:
            started = time.monotonic()
            response = await deliver(http, s, body)
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200, response.text
    print(f"\n{len(deliveries)} webhooks with Kafka unreachable, slowest {slowest * 1000:.0f} ms")
    assert slowest < FAST_S
    assert await count(clean_db, "stripe_events") == len(deliveries)
    waiting = "published_at IS NULL AND event_type LIKE 'stripe.%'"
    assert await count(clean_db, "outbox", waiting) == len(deliveries)

    # Kafka is back: the relay and the consumers run against the real broker.
    started = time.monotonic()
    async with running_pipeline(s, clean_db):
        await wait_until(lambda: _all_succeeded(clean_db), 60, "payments applied")
        await wait_until(lambda: payments_consumed(clean_db, s), 30, "payment.processed consumed")
    print(f"backlog drained and applied in {time.monotonic() - started:.1f}s")
    assert await count(clean_db, "outbox", "published_at IS NULL") == 0
    processed = await asyncio.to_thread(processed_events_in_kafka, s)
    assert sorted(p.envelope["data"]["payment_intent_id"] for p in processed) == sorted(
        f"pi_down_{n}" for n in range(INTENTS)
    )


async def _all_succeeded(engine: AsyncEngine) -> bool:
    return await count(engine, "payments", "status = 'succeeded'") == INTENTS
