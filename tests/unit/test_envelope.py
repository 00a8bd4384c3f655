"""The event envelope (core/envelope.py) and what the outbox writer renders into it
(core/outbox.py): the Kafka value round-trips, a value that is no envelope is refused
with the reason (the consumer parks it: architecture invariant 6), and a key always
lands on the same shard."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core.envelope import (
    ENVELOPE_FIELDS,
    SCHEMA_VERSION,
    Envelope,
    EnvelopeError,
    event_key,
    kafka_headers,
)
from core.outbox import NewEvent, shard_of

EVENT_ID = uuid.UUID("8c1f5e0a-5b9e-4d7e-9a51-3f2b7c0d6e42")
NOW = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "event_id": EVENT_ID,
        "event_type": "project.created",
        "aggregate_type": "project",
        "aggregate_id": "17",
        "sequence": 3,
        "schema_version": SCHEMA_VERSION,
        "timestamp": NOW,
        "user_id": 5,
        "data": {"title": "Rocket", "tags": ["a", "é"]},
    }
    fields.update(overrides)
    return Envelope(**fields)


def value(**overrides: Any) -> bytes:
    doc = envelope().to_dict()
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_the_value_keeps_the_original_fields_and_adds_ours() -> None:
    doc = envelope().to_dict()
    assert list(doc) == list(ENVELOPE_FIELDS)
    assert doc["event_id"] == str(EVENT_ID)
    assert doc["timestamp"] == "2030-01-02T03:04:05.678000Z"
    assert doc["user_id"] == 5
    assert doc["data"] == {"title": "Rocket", "tags": ["a", "é"]}


@pytest.mark.parametrize("user_id", [5, None])
def test_to_dict_then_parse_round_trips(user_id: int | None) -> None:
    e = envelope(user_id=user_id)
    assert Envelope.parse(json.dumps(e.to_dict()).encode()) == e
    assert Envelope.parse(json.dumps(e.to_dict())) == e


def test_timestamps_in_other_offsets_are_the_same_instant() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert Envelope.parse(value(timestamp=plus_two)).timestamp == NOW


def test_the_key_is_the_aggregate() -> None:
    assert envelope().key == "project:17" == event_key("project", "17")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no value"),
        (b"", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"[]", "not a JSON object"),
        (b"7", "not a JSON object"),
        (value(schema_version=0), "unknown schema_version 0"),
        (value(schema_version="1"), "unknown schema_version '1'"),
        (value(event_id="not-a-uuid"), "bad event_id or timestamp"),
        (value(timestamp="yesterday"), "bad event_id or timestamp"),
        (value(sequence=0), "sequence must be a positive integer"),
        (value(sequence=-3), "sequence must be a positive integer"),
        (value(sequence="3"), "sequence must be a positive integer"),
        (value(sequence=3.0), "sequence must be a positive integer"),
        (value(user_id="5"), "user_id must be an integer or null"),
        (value(data=[]), "data must be a JSON object"),
        (value(data=None), "data must be a JSON object"),
        (value(event_type=""), "event_type must be a non-empty string"),
        (value(aggregate_type=None), "aggregate_type must be a non-empty string"),
        (value(aggregate_id=17), "aggregate_id must be a non-empty string"),
    ],
)
def test_a_value_that_is_no_envelope_is_refused_with_the_reason(
    raw: bytes | None, reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.parse(raw)


@pytest.mark.parametrize("missing", ENVELOPE_FIELDS)
def test_every_field_is_required(missing: str) -> None:
    doc = envelope().to_dict()
    del doc[missing]
    with pytest.raises(EnvelopeError, match=rf"envelope lacks fields: {missing}$"):
        Envelope.parse(json.dumps(doc))


def test_all_missing_fields_are_named() -> None:
    with pytest.raises(EnvelopeError, match=r"lacks fields: event_id, event_type, .*, data$"):
        Envelope.parse(b"{}")


def test_headers_carry_ours_and_the_cloudevents_attributes() -> None:
    headers = kafka_headers(
        event_id=EVENT_ID,
        event_type="project.created",
        aggregate_type="project",
        time=NOW.astimezone(timezone(timedelta(hours=-5))),
        traceparent=TRACEPARENT,
    )
    assert headers == {
        "event_id": str(EVENT_ID),
        "event_type": "project.created",
        "content-type": "application/json",
        "ce_specversion": "1.0",
        "ce_id": str(EVENT_ID),
        "ce_source": "/connectin/project",
        "ce_type": "project.created",
        "ce_time": "2030-01-02T03:04:05.678000Z",
        "traceparent": TRACEPARENT,
    }


@pytest.mark.parametrize("traceparent", [None, ""])
def test_no_traceparent_header_without_a_trace(traceparent: str | None) -> None:
    headers = kafka_headers(
        event_id=EVENT_ID,
        event_type="t",
        aggregate_type="a",
        time=NOW,
        traceparent=traceparent,
    )
    assert "traceparent" not in headers


def test_the_outbox_writer_renders_the_envelope_and_headers_of_an_event() -> None:
    event = NewEvent(
        topic="project-events",
        event_type="project.created",
        aggregate_type="project",
        aggregate_id="17",
        data={"title": "Rocket", "tags": ["a", "é"]},
        user_id=5,
        traceparent=TRACEPARENT,
        event_id=EVENT_ID,
    )
    rendered, headers = event.render(NOW, sequence=3)
    assert rendered == envelope()
    assert headers["traceparent"] == TRACEPARENT
    assert headers["ce_id"] == str(EVENT_ID)
    assert Envelope.parse(json.dumps(rendered.to_dict())) == rendered


def test_each_new_event_gets_its_own_id() -> None:
    a, b = (NewEvent("t", "x.y", "a", "1", {}) for _ in range(2))
    assert a.event_id != b.event_id


def test_a_key_always_lands_on_the_same_shard() -> None:
    """crc32, not Python's salted hash(): every process and restart agrees, and the
    values are pinned so a change of function (which would move pending rows of a key
    to another shard, breaking its order) fails here."""
    assert [shard_of(k, 4) for k in ("user:1", "user:2", "project:17", "")] == [2, 0, 1, 0]
    assert shard_of("user:1", 1) == 0
    keys = [f"user:{n}" for n in range(1_000)]
    assert {shard_of(k, 4) for k in keys} == {0, 1, 2, 3}
    assert all(0 <= shard_of(k, 7) < 7 for k in keys)
