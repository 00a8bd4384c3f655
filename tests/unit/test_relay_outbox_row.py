"""An outbox row's size against the broker's limit (core/outbox_store.OutboxRow):
rows above it are parked in dead_letters instead of blocking their shard
(architecture invariant 6), so the count must be UTF-8 bytes, never characters."""

from __future__ import annotations

import json

import pytest

from core.outbox_store import OutboxRow


def row(key: str, value: str, headers: dict[str, str | bytes | None] | None = None) -> OutboxRow:
    """Built as the relay's fetch builds it: `chars` counts the headers' JSON text."""
    headers = headers or {}
    chars = len(key) + len(value) + len(json.dumps(headers))
    return OutboxRow(1, "e", "t", key, value, headers, chars)


def test_the_size_is_key_value_and_headers_in_utf8_bytes() -> None:
    r = row("k1", "é" * 10, {"event_id": "abc", "traceparent": None})
    assert r.size_bytes() == 2 + 20 + len("event_id") + 3 + len("traceparent")


@pytest.mark.parametrize("limit", [0, 1, 50, 99])
def test_a_row_above_the_limit_exceeds_it(limit: int) -> None:
    assert row("k", "v" * 99).exceeds(limit)


@pytest.mark.parametrize("limit", [100, 101, 10_000])
def test_a_row_within_the_limit_does_not(limit: int) -> None:
    assert not row("k", "v" * 99).exceeds(limit)


def test_multibyte_characters_count_as_their_bytes() -> None:
    """40 characters of 4 bytes each: 160 bytes, over a 100-byte limit although only
    40 characters long."""
    r = row("", "\U0001f600" * 40)
    assert r.size_bytes() == 160
    assert r.exceeds(159)
    assert not r.exceeds(160)


def test_the_character_shortcut_never_hides_an_oversize_row() -> None:
    """Whatever the characters, a row whose bytes exceed the limit is reported."""
    for text in ("a" * 30, "é" * 30, "€" * 30, "\U0001f600" * 30):
        r = row("key", text, {"h": text})
        for limit in range(0, 300, 7):
            assert r.exceeds(limit) == (r.size_bytes() > limit), (text[0], limit)
