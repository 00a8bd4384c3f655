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
        ("RELAY_COMPRESSION", "brotli"),
    ],
)
def test_bad_values_fail_clearly(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_to_env_round_trips() -> None:
    s = Settings.from_env({"RELAY_SHARDS": "7", "TOPIC_USER_EVENTS": "u", "LOG_LEVEL": "debug"})
    s = replace(s, relay=replace(s.relay, batch_size=33, compression="zstd"))
    assert Settings.from_env(s.to_env()) == s
