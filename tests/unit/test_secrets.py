"""Production refuses the published and short secrets, with one line naming the
variable (tests/integration/test_secrets_processes.py starts every process on them)."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

import pytest
import yaml

from cli.up import platform_env
from core.secrets import MIN_SECRET_BYTES, PUBLISHED_DEFAULTS, secret_problems, startup_settings
from core.settings import DEVELOPMENT, PRODUCTION, TEST, Settings, SettingsError
from tests.support import REPO as ROOT

SECRETS = ("JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "OPS_TOKEN")


def good_secrets() -> dict[str, str]:
    return {
        "JWT_SECRET": secrets.token_urlsafe(32),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
        "STRIPE_SECRET_KEY": "sk_live_" + secrets.token_hex(16),
        "OPS_TOKEN": secrets.token_urlsafe(32),
    }


def production(**overrides: str) -> Settings:
    return Settings.from_env({**good_secrets(), **overrides})


def test_the_default_environment_is_production() -> None:
    assert Settings.from_env({}).environment == PRODUCTION
    with pytest.raises(SettingsError, match="CONNECTIN_ENV"):
        Settings.from_env({"CONNECTIN_ENV": "staging"})


def test_own_long_secrets_are_accepted_and_an_unset_ops_token_is_fine() -> None:
    assert secret_problems(production()) == []
    assert secret_problems(production(OPS_TOKEN="")) == []


@pytest.mark.parametrize("name", SECRETS)
def test_every_published_default_is_refused(name: str) -> None:
    for value in sorted(PUBLISHED_DEFAULTS):
        problems = secret_problems(production(**{name: value}))
        assert len(problems) == 1 and problems[0].startswith(name), (name, value, problems)


@pytest.mark.parametrize("name", SECRETS)
def test_short_secrets_are_refused(name: str) -> None:
    prefix = {"STRIPE_WEBHOOK_SECRET": "whsec_", "STRIPE_SECRET_KEY": "sk_live_"}.get(name, "")
    short = prefix + "x" * (MIN_SECRET_BYTES - 1 - len(prefix))
    assert secret_problems(production(**{name: short})) == [
        f"{name} is shorter than {MIN_SECRET_BYTES} bytes"
    ]
    # Bytes, not characters: 16 two-byte characters are 32 bytes.
    assert secret_problems(production(**{name: prefix + "é" * 16})) == []


def test_a_stripe_secret_key_must_be_one() -> None:
    assert secret_problems(production(STRIPE_SECRET_KEY="pk_live_" + "x" * 40)) == [
        "STRIPE_SECRET_KEY is not a Stripe secret key (sk_live_/sk_test_/rk_...)"
    ]
    assert secret_problems(production(STRIPE_SECRET_KEY="rk_test_" + "x" * 24)) == []


@pytest.mark.parametrize("environment", [DEVELOPMENT, TEST])
def test_development_and_test_may_use_the_defaults(environment: str) -> None:
    assert secret_problems(Settings.from_env({"CONNECTIN_ENV": environment})) == []


def _written_values() -> set[str]:
    """Values of the four secrets written anywhere in the repository: settings
    defaults, compose.yaml's `${VAR:-default}`, and literals shaped like one of them
    in README and tests."""
    values = {
        Settings().auth.jwt_secret,
        Settings().stripe.webhook_secret,
        Settings().stripe.secret_key,
    }
    compose = (ROOT / "compose.yaml").read_text()
    for name in SECRETS:
        values |= set(re.findall(rf"\$\{{{name}:-([^}}]*)\}}", compose))
    shaped = re.compile(r"""["'`]((?:sk|rk)_[A-Za-z0-9_]+|whsec_[A-Za-z0-9_]+)["'`]""")
    token = re.compile(r"""(?:TOKEN|SECRET)\w* = ["']([^"']+)["']""")
    for path in [ROOT / "README.md", *sorted((ROOT / "tests").rglob("*.py"))]:
        text = path.read_text()
        values |= set(shaped.findall(text)) | set(token.findall(text))
    return {v for v in values if v}


def test_every_value_written_in_the_repository_is_refused_in_production() -> None:
    written = _written_values()
    assert {"whsec_connectin_dev", "sk_test_connectin", "dev-ops-token"} <= written
    for value in written:
        for name in SECRETS:
            assert secret_problems(production(**{name: value})), (name, value)


def test_startup_settings_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        startup_settings("relay", {**good_secrets(), "JWT_SECRET": "abc"})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("connectin relay: refusing to start in production")
    assert "JWT_SECRET is shorter than 32 bytes" in err


def test_connectin_up_in_development_invents_a_random_ops_token() -> None:
    development = Settings.from_env({"CONNECTIN_ENV": DEVELOPMENT})
    first = platform_env(development, {}, 8420)
    second = platform_env(development, {}, 8420)
    assert first.api.ops_token != second.api.ops_token
    assert secret_problems(replace(first, environment=PRODUCTION, auth=production().auth)) == [
        "STRIPE_WEBHOOK_SECRET is a published default",
        "STRIPE_SECRET_KEY is a published default",
    ]
    own = Settings.from_env({"CONNECTIN_ENV": DEVELOPMENT, "OPS_TOKEN": "x" * 40})
    assert platform_env(own, {}, 8420).api.ops_token == "x" * 40


def test_compose_runs_its_local_stack_as_development() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    env = compose["x-app-environment"]
    assert env["CONNECTIN_ENV"] == "${CONNECTIN_ENV:-development}"


def test_make_targets_set_and_print_their_environment() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target, environment in (("up", DEVELOPMENT), ("test", TEST)):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert recipe is not None, target
        assert f'echo "make {target}: CONNECTIN_ENV={environment}' in recipe.group(1)
        assert f"CONNECTIN_ENV={environment} $(" in recipe.group(1)
