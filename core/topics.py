"""Create Kafka topics at start-up; the platform never relies on broker auto-create."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from core.kafka import admin_config


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    # Only where no record's partition depends on the count: adding partitions to a
    # keyed topic moves keys to other partitions and breaks their order.
    may_grow: bool = False


# Replication is the cluster's own decision (default.replication.factor and
# min.insync.replicas of its brokers). Counting the brokers that answer instead would
# create topics under-replicated for good whenever one node happens to be down.
BROKER_DEFAULT = -1


class TopicError(RuntimeError):
    """A topic exists with a shape the platform cannot use."""


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30) -> None:
    """Create missing topics, replicated as the brokers' defaults say; check existing
    ones have at least the partitions asked, adding them where the spec may grow."""
    admin = AdminClient(admin_config(bootstrap_servers))
    wanted = {spec.name: spec for spec in specs}
    existing = admin.list_topics(timeout=timeout).topics
    missing = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=BROKER_DEFAULT,
            config=dict(s.config),
        )
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
    to_grow = [
        s
        for s in wanted.values()
        if s.may_grow and s.name in existing and len(existing[s.name].partitions) < s.partitions
    ]
    if to_grow:
        grown = [NewPartitions(s.name, s.partitions) for s in to_grow]
        for name, future in admin.create_partitions(grown, operation_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                # Another process grew it first (to this count or more): re-checked below.
                if error.code() == KafkaError.INVALID_PARTITIONS:
                    continue
                if error.retriable():
                    raise
                # Not allowed (ACLs, a policy): waiting will not change that.
                raise TopicError(
                    f"cannot add partitions to topic {name} ({error.str()}): add them "
                    f"by hand, {wanted[name].partitions} needed"
                ) from exc
    # A just-created topic shows in metadata a moment later: wait for it to settle.
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout).topics
        short = {
            spec.name: len(metadata[spec.name].partitions) if spec.name in metadata else 0
            for spec in wanted.values()
        }
        short = {name: have for name, have in short.items() if have < wanted[name].partitions}
        if not short:
            return
        if time.monotonic() > deadline:
            name, have = next(iter(short.items()))
            raise TopicError(
                f"topic {name} has {have} partitions, at least {wanted[name].partitions} needed"
            )
        time.sleep(0.1)
