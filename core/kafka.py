"""What the processes agree on about Kafka: names derived from the deployment's
namespace (consumer groups, transactional ids, client ids) and the client settings
every producer and consumer of ours starts from.

Operators' tools (`connectin status`, /ops) find the consumer groups by these names
without importing consumers/, and the dead-letter replay produces exactly as the
relay does: if their partitioners drifted, a replayed event would land on another
partition than its key's earlier events and per-key order would break.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.settings import KafkaSettings

# Same key -> same partition (architecture invariant 2), as the Java clients choose;
# librdkafka's own default (consistent_random, CRC32) would not.
PARTITIONER = "murmur2_random"

Config = dict[str, Any]


def group_prefix(kafka: KafkaSettings) -> str:
    """Every consumer group of this deployment starts with it."""
    return f"{kafka.transactional_id_prefix}-"


def group_id(kafka: KafkaSettings, consumer: str) -> str:
    """The Kafka consumer group of a consumer name (`users`, `payments`...)."""
    return group_prefix(kafka) + consumer


def consumer_name(kafka: KafkaSettings, group: str) -> str | None:
    """The consumer name of one of this deployment's groups; None for anyone else's."""
    prefix = group_prefix(kafka)
    return group[len(prefix) :] if group.startswith(prefix) else None


def relay_transactional_id(kafka: KafkaSettings, shard: int) -> str:
    """The leader of shard `shard` produces as this id: whoever takes the shard next
    fences it with init_transactions (architecture invariant 3)."""
    return f"{kafka.transactional_id_prefix}-relay-{shard}"


def checkpoint_reader_group() -> str:
    """A group of its own for each read of a checkpoint partition: the reader assigns
    the partition itself and never commits, so no group state is shared or left to
    rebalance."""
    return f"connectin-checkpoint-reader-{uuid.uuid4()}"


def consumer_client_id(consumer: str) -> str:
    return f"connectin-consumer-{consumer}"


STATUS_CLIENT_ID = "connectin-status"


def admin_config(
    bootstrap_servers: str, *, client_id: str | None = None, quiet: bool = False
) -> Config:
    """Every admin client's. It takes the address rather than KafkaSettings because the
    development environment also asks single nodes of a local cluster. `quiet` for
    callers that poll a broker that may be down or starting: librdkafka would print
    every refused connection to stderr, over the CLI's screen, while the failure
    reaches the caller as an exception anyway."""
    config: Config = {"bootstrap.servers": bootstrap_servers}
    if client_id is not None:
        config["client.id"] = client_id
    if quiet:
        config["log_level"] = 0
    return config


def base_producer_config(kafka: KafkaSettings) -> Config:
    """Every producer of events: idempotent, acknowledged by all in-sync replicas, and
    partitioning keys as everyone else does."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": PARTITIONER,
    }


def transactional_producer_config(kafka: KafkaSettings, transactional_id: str) -> Config:
    return {**base_producer_config(kafka), "transactional.id": transactional_id}


def base_consumer_config(kafka: KafkaSettings, group: str) -> Config:
    """Every consumer of events: only committed transactions, and offsets committed by
    us after the effects, never by the client on its own."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    }
