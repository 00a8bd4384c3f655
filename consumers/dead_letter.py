"""The `<topic>.dlq` side of parking a record: the exact original bytes, key and
headers, plus headers saying why and from where."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from confluent_kafka import Producer

from consumers.incoming import Incoming
from core.dead_letters import Headers, deliver, producer_config
from core.settings import KafkaSettings

MAX_ERROR_HEADER = 2000


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class DeadLetterTopic:
    """Created on first use: most processes never park anything."""

    def __init__(self, kafka: KafkaSettings, consumer: str) -> None:
        self._kafka = kafka
        self._consumer = consumer
        self._producer: Producer | None = None

    async def publish(
        self, message: Incoming, error: str, attempts: int, dead_letter_id: int
    ) -> tuple[int, int]:
        if self._producer is None:
            self._producer = Producer(producer_config(self._kafka))
        headers: Headers = [(k, v or b"") for k, v in message.headers]
        headers += [
            ("dlq_error", error[:MAX_ERROR_HEADER].encode()),
            ("dlq_consumer", self._consumer.encode()),
            ("dlq_original_topic", message.topic.encode()),
            ("dlq_original_partition", str(message.partition).encode()),
            ("dlq_original_offset", str(message.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_dead_letter_id", str(dead_letter_id).encode()),
            ("dlq_time", datetime.now(UTC).isoformat().encode()),
        ]
        return await asyncio.to_thread(
            deliver,
            self._producer,
            dlq_topic(message.topic),
            message.value,
            message.key,
            headers,
        )

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 5)
            self._producer = None
