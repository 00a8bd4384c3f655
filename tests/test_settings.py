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
    s = replace(s, relay=replace(s.relay, batch_size=33))
    assert Settings.from_env(s.to_env()) == s
