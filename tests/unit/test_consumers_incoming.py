"""A consumed record's headers as the consumers read them (consumers/incoming.py):
the last value of a header wins, and a malformed traceparent or event id is ignored
rather than trusted."""

from __future__ import annotations

import uuid

from consumers.incoming import Incoming
from core.dead_letters import REPLAY_HEADER

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def record(*headers: tuple[str, bytes | None], key: bytes | None = b"user:1") -> Incoming:
    return Incoming("user-events", 0, 7, key, b"{}", tuple(headers))


def test_the_last_value_of_a_header_wins() -> None:
    r = record(("event_type", b"a"), ("event_type", b"b"))
    assert r.header("event_type") == "b"
    assert r.header("absent") is None


def test_header_values_are_decoded_leniently() -> None:
    r = record(("h", b"caf\xc3\xa9"), ("bad", b"\xff"), ("none", None))
    assert r.header("h") == "café"
    assert r.header("bad") == "\ufffd"
    assert r.header("none") is None


def test_a_valid_traceparent_gives_the_trace_id() -> None:
    r = record(("traceparent", TRACEPARENT.encode()))
    assert r.traceparent == TRACEPARENT
    assert r.trace_id == TRACE_ID
    future = f"{TRACEPARENT}-whatever"
    assert record(("traceparent", future.encode())).trace_id == TRACE_ID


def test_a_malformed_traceparent_is_ignored() -> None:
    for bad in (
        b"",
        b"00-short-b7ad6b7169203331-01",
        TRACEPARENT.upper().encode(),
        TRACEPARENT[:-1].encode(),
        b"\xff",
    ):
        r = record(("traceparent", bad))
        assert r.traceparent is None and r.trace_id is None, bad
    assert record().traceparent is None


def test_the_event_id_header_is_a_uuid_or_nothing() -> None:
    event_id = uuid.uuid4()
    assert record(("event_id", str(event_id).encode())).header_event_id == event_id
    assert record(("event_id", b"nope")).header_event_id is None
    assert record(("event_id", None)).header_event_id is None
    assert record().header_event_id is None


def test_a_replay_is_marked_by_its_header() -> None:
    assert record((REPLAY_HEADER, b"12")).is_replay
    assert record((REPLAY_HEADER, None)).is_replay is False
    assert record(("event_id", b"x")).is_replay is False


def test_the_key_as_text() -> None:
    assert record().key_text == "user:1"
    assert record(key=None).key_text is None
    assert record(key=b"\xffk").key_text == "\ufffdk"
