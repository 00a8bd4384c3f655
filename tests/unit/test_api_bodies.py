"""Request-body rules applied before msgspec decodes anything (api/bodies.py): the
nesting limit that keeps a deep body from becoming a RecursionError, and patterns that
must match the whole string."""

from __future__ import annotations

import json
import re

import pytest

from api.bodies import MAX_JSON_DEPTH, anchored, nesting_exceeds


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


@pytest.mark.parametrize("depth", [0, 1, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_bodies_up_to_the_limit_pass(depth: int) -> None:
    assert not nesting_exceeds(nested(depth))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deeper_bodies_are_caught(depth: int) -> None:
    assert nesting_exceeds(nested(depth))


def test_objects_and_arrays_count_alike() -> None:
    deep = "".join('{"a":[' for _ in range(33)) + "1" + "]}" * 33
    assert json.loads(deep)
    assert nesting_exceeds(deep.encode())
    assert not nesting_exceeds(deep.encode(), limit=66)


def test_many_shallow_brackets_are_not_depth() -> None:
    wide = json.dumps([[n] for n in range(1_000)]).encode()
    assert not nesting_exceeds(wide)


def test_brackets_inside_strings_do_not_nest() -> None:
    inside = json.dumps({"text": "[" * 500, "quoted": '\\"[[[' * 100}).encode()
    assert not nesting_exceeds(inside)
    escaped_quote_then_deep = b'["\\"",' + nested(MAX_JSON_DEPTH + 1) + b"]"
    assert nesting_exceeds(escaped_quote_then_deep)


def test_the_limit_is_a_parameter() -> None:
    assert nesting_exceeds(nested(3), limit=2)
    assert not nesting_exceeds(nested(3), limit=3)


def test_anchored_patterns_match_the_whole_string_only() -> None:
    name = re.compile(anchored(r"[a-z]+"))
    assert name.search("alice")
    for bad in ("alice\n", "alice bob", " alice", "alice!", ""):
        assert not name.search(bad), repr(bad)
    # Python's own `$` lets the trailing newline through: what anchored() guards against.
    assert re.search(r"^[a-z]+$", "alice\n")


def test_anchored_alternatives_are_grouped() -> None:
    currency = re.compile(anchored("usd|eur"))
    assert currency.search("usd") and currency.search("eur")
    assert not currency.search("usdx") and not currency.search("xeur")
