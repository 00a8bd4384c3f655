"""Create Kafka topics at start-up; the platform never relies on broker auto-create."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


class TopicError(RuntimeError):
    """A topic exists with a shape the platform cannot use."""


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30) -> None:
    """Create missing topics; check existing ones have at least the partitions asked."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    wanted = {spec.name: spec for spec in specs}
    existing = admin.list_topics(timeout=timeout).topics
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=dict(s.config))
        for s in wanted.values()
        if s.name not in existing
    ]
    if missing:
        for future in admin.create_topics(missing, operation_timeout=timeout).values():
            try:
                future.result()
            except KafkaException as exc:
                # Another process created it between our list and create: that is fine.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    metadata = admin.list_topics(timeout=timeout).topics
    for spec in wanted.values():
        have = len(metadata[spec.name].partitions) if spec.name in metadata else 0
        if have < spec.partitions:
            raise TopicError(
                f"topic {spec.name} has {have} partitions, at least {spec.partitions} needed"
            )
