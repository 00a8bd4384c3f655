"""Logs at DEBUG keep no secret: the real API process (`connectin api`, LOG_LEVEL=DEBUG)
calls a real localstripe, the stripe package logs whole request and response bodies,
and every line on stderr is our JSON with client secrets, keys, emails, names and
tokens redacted."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.logging import redact_text
from core.settings import Settings
from tests.support.api import PASSWORD
from tests.support.payments import (
    LocalStripe,
    count,
    payment_settings,
)
from tests.support.ports import free_port
from tests.support.processes import api_process, settings_env


async def test_debug_logs_of_a_real_stripe_call_hold_no_secret(
    settings: Settings,
    clean_db: AsyncEngine,
    localstripe: LocalStripe,
    tmp_path: Path,
) -> None:
    s = payment_settings(settings, "redact", localstripe.base_url)
    s = replace(
        s,
        log_level="DEBUG",
        stripe=replace(s.stripe, secret_key="sk_test_" + secrets.token_hex(16)),
    )
    name = f"redact{secrets.token_hex(4)}"
    email = f"{name}@example.com"
    with api_process(settings_env(s), free_port(), tmp_path) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            registered = await http.post(
                "/api/v1/auth/register",
                json={"username": name, "email": email, "password": PASSWORD},
            )
            assert registered.status_code == 201, registered.text
            login = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            customer = await http.post("/api/v1/payments/create-customer", headers=auth)
            assert customer.status_code == 200, customer.text
            intent = await http.post(
                "/api/v1/payments/create-payment-intent",
                json={"amount": 1234, "currency": "usd"},
                headers=auth,
            )
            assert intent.status_code == 200, intent.text
            client_secret = intent.json()["client_secret"]
    text = api.process.log_path.read_text()
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line]
    stripe_debug = [
        line for line in lines if line.get("logger") == "stripe" and line["level"] == "debug"
    ]
    # The stripe package really logged the bodies (so the assertions below mean something).
    assert any("API response body" in line["event"] for line in stripe_debug), text
    assert any("Post details" in line["event"] for line in stripe_debug), text
    assert any("[redacted]" in line["event"] for line in stripe_debug), text
    for secret in (
        client_secret,
        client_secret.split("_secret_")[1],
        email,
        email.replace("@", "%40"),
        name,
        token,
        s.stripe.secret_key,
        s.stripe.webhook_secret,
    ):
        assert secret not in text, secret
    # Redaction changes what is logged, never what is stored.
    assert await count(clean_db, "stripe_customers") == await count(clean_db, "payments") == 1


@pytest.mark.parametrize(
    ("logged", "kept"),
    [
        ('"client_secret": "pi_1_secret_abc"', '"client_secret": "'),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: "),
        ("key=sk_live_abcdef123 and rk_test_zz", "key="),
        ("secret whsec_abc/def+", "secret "),
        ("email=a.b%40example.com&name=Ann+Lee&metadata[user_id]=3", "metadata[user_id]=3"),
        ('{\\"name\\": \\"Ann Lee\\", \\"email\\": \\"ann@example.com\\"}', '{\\"name\\": \\"'),
    ],
)
def test_redaction_of_each_shape(logged: str, kept: str) -> None:
    redacted = redact_text(logged)
    assert kept in redacted and "[redacted]" in redacted
    for secret in ("abc", "eyJhbGciOi", "abcdef123", "zz", "a.b%40", "Ann", "ann@"):
        assert secret not in redacted.replace("[redacted]", ""), (logged, redacted)
