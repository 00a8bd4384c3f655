"""The one settings object: defaults, parsing errors, and the round trip to a child
process's environment."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.settings import Settings, SettingsError


def test_defaults_match_the_documented_topic_names() -> None:
    s = Settings.from_env({})
    assert s.kafka.topics.event_topics == (
        "user-events",
        "project-events",
        "message-events",
        "payment-events",
    )
    assert s.database.url.startswith("postgresql+asyncpg://")


def test_plain_postgres_urls_are_driven_by_asyncpg() -> None:
    s = Settings.from_env({"DATABASE_URL": "postgresql://u:p@h:5/db"})
    assert s.database.url == "postgresql+asyncpg://u:p@h:5/db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_SHARDS", "zero"),
        ("RELAY_SHARDS", "0"),
        ("RELAY_BATCH_SIZE", "-1"),
        ("TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("TRUSTED_PROXY_HEADER", "x-real-ip"),
        ("LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE", "0"),
        ("RELAY_COMPRESSION", "brotli"),
    ],
)
def test_bad_values_fail_clearly(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_trusted_proxies_are_off_by_default_and_parsed_to_networks() -> None:
    assert Settings.from_env({}).api.trusted_proxies == ()
    s = Settings.from_env(
        {"TRUSTED_PROXIES": " 10.0.0.7 , 192.168.1.0/24,::1", "TRUSTED_PROXY_HEADER": "Forwarded"}
    )
    assert s.api.trusted_proxies == ("10.0.0.7/32", "192.168.1.0/24", "::1/128")
    assert s.api.proxy_header == "forwarded"


def test_to_env_round_trips() -> None:
    s = Settings.from_env(
        {
            "RELAY_SHARDS": "7",
            "TOPIC_USER_EVENTS": "u",
            "LOG_LEVEL": "debug",
            "TRUSTED_PROXIES": "10.0.0.0/8",
            "TRUSTED_PROXY_HEADER": "forwarded",
            "LOGIN_ATTEMPTS_PER_MINUTE": "4",
            "LOGIN_ADDRESS_ATTEMPTS_PER_MINUTE": "40",
        }
    )
    s = replace(s, relay=replace(s.relay, batch_size=33, compression="zstd"))
    assert Settings.from_env(s.to_env()) == s


def test_to_env_carries_every_setting_to_a_child_process() -> None:
    """Child processes (relay, consumers, `connectin up`'s, tests' and benchmarks')
    get their configuration only through to_env: a field it forgot would silently be
    the default there, e.g. production with the parent's test secrets."""
    env = {
        "CONNECTIN_ENV": "test",
        "DATABASE_POOL_SIZE": "3",
        "DATABASE_MAX_OVERFLOW": "4",
        "RELAY_TRANSACTION_TIMEOUT_MS": "5000",
        "RELAY_LINGER_MS": "7",
        "RELAY_COMPRESSION": "zstd",
        "OUTBOX_RETENTION_HOURS": "1.5",
        "OUTBOX_RETENTION_BATCH": "11",
        "RELAY_FAILPOINT": "before_produce:0.5",
        "JWT_SECRET": "j" * 40,
        "JWT_ISSUER": "iss",
        "JWT_AUDIENCE": "aud",
        "JWT_TTL_S": "60",
        "LOGIN_ATTEMPTS_PER_MINUTE": "3",
        "CORS_ORIGINS": "https://a.example,https://b.example",
        "API_MAX_BODY_BYTES": "2048",
        "OPS_TOKEN": "o" * 40,
        "COOKIE_SECURE": "false",
        "STRIPE_SECRET_KEY": "sk_test_" + "s" * 30,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_p",
        "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 30,
        "STRIPE_API_BASE": "http://127.0.0.1:1",
        "STRIPE_MAX_AMOUNT": "99",
        "STRIPE_CURRENCIES": "usd",
        "STRIPE_WEBHOOK_TOLERANCE_S": "9",
        "STATUS_MAX_OLDEST_UNPUBLISHED_S": "2.5",
        "STATUS_MAX_CONSUMER_LAG": "8",
        "CONSUMER_INSTANCE_ID": "c-1",
    }
    s = Settings.from_env(env)
    defaults = Settings()
    for section in ("database", "relay", "consumers", "auth", "api", "stripe", "status"):
        assert getattr(s, section) != getattr(defaults, section), section
    assert s.environment != defaults.environment
    assert Settings.from_env(s.to_env()) == s
