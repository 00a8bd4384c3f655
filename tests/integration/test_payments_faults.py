"""Fault injection in the payment writes and in the webhook's transaction: the
database fails half-way (a real Postgres error raised by a trigger on one table), and
the other half must not be left behind. Then the fault is lifted and the same request
(same idempotency key / same Stripe event) succeeds, once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from tests.support.api import api_client, bearer, user_with_token
from tests.support.payments import (
    CUSTOMER,
    INTENT,
    LocalStripe,
    count,
    deliver,
    event_body,
    intent_object,
    payment_settings,
)

PAYMENT_TABLES = ("stripe_customers", "payments", "subscriptions", "stripe_events")


@asynccontextmanager
async def fault(
    engine: AsyncEngine, table: str, when: str = "true", at_commit: bool = False
) -> AsyncIterator[None]:
    """Every INSERT into `table` matching `when` fails with a Postgres error until the
    block ends: at once, or (`at_commit`) only when its transaction commits, as a
    connection lost or a serialization failure at COMMIT would."""
    timing = (
        "CONSTRAINT TRIGGER injected_fault AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED"
        if at_commit
        else "TRIGGER injected_fault BEFORE INSERT ON {table}"
    ).format(table=table)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected fault on %', TG_TABLE_NAME; END $$"
        )
        await conn.exec_driver_sql(
            f"CREATE {timing} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION injected_fault()"
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP TRIGGER injected_fault ON {table}")
            await conn.exec_driver_sql("DROP FUNCTION injected_fault()")


async def snapshot(engine: AsyncEngine) -> dict[str, int]:
    rows = {table: await count(engine, table) for table in PAYMENT_TABLES}
    rows["payment events"] = await count(engine, "outbox", "topic LIKE 'payment-events%'")
    return rows


PAYMENT_EVENT = "NEW.topic LIKE 'payment-events%'"


@pytest.mark.parametrize(
    ("route", "body", "table", "when", "at_commit"),
    [
        (CUSTOMER, None, "outbox", PAYMENT_EVENT, False),
        (CUSTOMER, None, "stripe_customers", "true", False),
        (CUSTOMER, None, "stripe_customers", "true", True),
        (INTENT, {"amount": 1500, "currency": "usd"}, "outbox", PAYMENT_EVENT, False),
        (INTENT, {"amount": 1500, "currency": "usd"}, "payments", "true", False),
        (INTENT, {"amount": 1500, "currency": "usd"}, "payments", "true", True),
    ],
    ids=[
        "customer/event fails",
        "customer/row fails",
        "customer/commit fails",
        "intent/event fails",
        "intent/row fails",
        "intent/commit fails",
    ],
)
async def test_a_payment_write_that_fails_half_way_leaves_nothing(
    settings: Settings,
    clean_db: AsyncEngine,
    localstripe: LocalStripe,
    route: str,
    body: dict[str, object] | None,
    table: str,
    when: str,
    at_commit: bool,
) -> None:
    """A failure at commit must release the idempotency claim like any other: the retry
    below is answered at once, not after the claim's lease."""
    s = payment_settings(settings, "fault", localstripe.base_url)
    async with api_client(s) as client:
        _, token = await user_with_token(client)
        if route == INTENT:
            # The customer first (its own write), so only the intent's write is faulted.
            assert (await client.post(CUSTOMER, headers=bearer(token))).status_code == 200
        headers = {**bearer(token), "Idempotency-Key": "fault-1"}
        before = await snapshot(clean_db)
        async with fault(clean_db, table, when, at_commit):
            failed = await client.post(route, json=body, headers=headers)
        assert failed.status_code >= 500, failed.text
        assert await snapshot(clean_db) == before
        retried = await client.post(route, json=body, headers=headers)
        assert retried.status_code == 200, retried.text
        again = await client.post(route, json=body, headers=headers)
        assert again.json() == retried.json()
    after = await snapshot(clean_db)
    grown = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    row_table = "stripe_customers" if route == CUSTOMER else "payments"
    assert grown == {row_table: 1, "payment events": 1}


@pytest.mark.parametrize("table", ["outbox", "stripe_events"])
async def test_a_webhook_whose_transaction_fails_stores_nothing_and_is_taken_on_redelivery(
    settings: Settings, clean_db: AsyncEngine, table: str
) -> None:
    """If stripe_events kept its row while the outbox insert failed, Stripe's
    redelivery would be answered "duplicate" and the event lost for ever."""
    s = payment_settings(settings, "webhook-fault")
    body = event_body(
        "payment_intent.created",
        intent_object("pi_fault", "requires_payment_method", user_id=1),
        created=int(time.time()),
    )
    async with api_client(s) as client:
        async with fault(clean_db, table):
            failed = await deliver(client, s, body)
        assert failed.status_code >= 500, failed.text
        assert await count(clean_db, "stripe_events") == 0
        assert await count(clean_db, "outbox") == 0
        redelivered = await deliver(client, s, body)
    assert (redelivered.status_code, redelivered.json()) == (
        200,
        {"received": True, "duplicate": False},
    )
    assert await count(clean_db, "stripe_events") == 1
    assert await count(clean_db, "outbox", "event_type = 'stripe.payment_intent.created'") == 1
