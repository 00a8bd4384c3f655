"""The start-up check every process runs: in production, no published or short secret.

Anything written in this repository (settings defaults, compose.yaml, README, tests)
is public, so a platform started on one of those values is open to anyone who read
it: a JWT signed with the default secret logs in as any user, a webhook signed with
the default secret creates a paid payment. Development and test may use them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from core.settings import PRODUCTION, Settings, SettingsError

MIN_SECRET_BYTES = 32
# Stripe's secret and restricted keys; the mode prefix is not secret, so the 32 bytes
# leave at least 24 random characters, the length of Stripe's shortest (oldest) keys.
STRIPE_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")

# Every default value written in this repository for the four secrets;
# tests/unit/test_secrets.py fails when a new one appears in compose.yaml, README or
# tests and is not refused here.
PUBLISHED_DEFAULTS = frozenset(
    {
        Settings().auth.jwt_secret,
        Settings().stripe.secret_key,
        Settings().stripe.webhook_secret,
        "dev-ops-token",
        "sk_test_x",
        "whsec_previous_secret_being_rotated_out",
        "whsec_wrong",
        "whsec_other",
        "ops-token-for-tests-9f3c",
        "page-test-token-41d7",
    }
)


def secret_problems(settings: Settings) -> list[str]:
    """What is wrong with the secrets, one phrase per variable; empty when fine or
    outside production."""
    if settings.environment != PRODUCTION:
        return []
    secrets: Mapping[str, str] = {
        "JWT_SECRET": settings.auth.jwt_secret,
        "STRIPE_WEBHOOK_SECRET": settings.stripe.webhook_secret,
        "STRIPE_SECRET_KEY": settings.stripe.secret_key,
        "OPS_TOKEN": settings.api.ops_token,
    }
    problems = []
    for name, value in secrets.items():
        if name == "OPS_TOKEN" and value == "":
            continue  # unset: the operator endpoints are off
        if value in PUBLISHED_DEFAULTS:
            problems.append(f"{name} is a published default")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
        elif name == "STRIPE_SECRET_KEY" and not value.startswith(STRIPE_KEY_PREFIXES):
            problems.append(f"{name} is not a Stripe secret key (sk_live_/sk_test_/rk_...)")
    return problems


def check_secrets(settings: Settings) -> None:
    problems = secret_problems(settings)
    if problems:
        raise SettingsError(
            "refusing to start in production (CONNECTIN_ENV): "
            + "; ".join(problems)
            + "; set your own secrets, or CONNECTIN_ENV=development"
        )


def startup_settings(process: str, env: Mapping[str, str] | None = None) -> Settings:
    """The settings of a starting process, or exit 2 with one line on stderr naming the
    variable (no traceback: the operator needs the variable, not our stack)."""
    try:
        settings = Settings.from_env(env)
        check_secrets(settings)
    except SettingsError as exc:
        print(f"connectin {process}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return settings
