"""core/kafka.py: the names and client settings the processes agree on."""

from __future__ import annotations

from core.dead_letters import producer_config as replay_producer_config
from core.kafka import (
    PARTITIONER,
    base_consumer_config,
    consumer_name,
    group_id,
    relay_transactional_id,
)
from core.settings import Settings
from relay.producer import producer_config as relay_producer_config


def test_a_group_id_names_its_consumer_back_and_nobody_elses() -> None:
    kafka = Settings().kafka
    assert group_id(kafka, "users") == "connectin-users"
    assert consumer_name(kafka, group_id(kafka, "payments")) == "payments"
    assert consumer_name(kafka, "someone-else-users") is None


def test_every_name_follows_the_deployment_namespace() -> None:
    kafka = Settings().kafka.namespaced("run1")
    assert group_id(kafka, "users") == "connectin-run1-users"
    assert relay_transactional_id(kafka, 3) == "connectin-run1-relay-3"


def test_the_relay_and_the_dead_letter_replay_partition_keys_alike() -> None:
    """A replayed event must land on its key's partition (per-key order)."""
    s = Settings()
    relay = relay_producer_config(s.kafka, s.relay, 0)
    replay = replay_producer_config(s.kafka)
    assert relay["partitioner"] == replay["partitioner"] == PARTITIONER == "murmur2_random"
    for durable in ("enable.idempotence", "acks"):
        assert relay[durable] == replay[durable]
    assert relay["transactional.id"] == relay_transactional_id(s.kafka, 0)


def test_consumers_read_committed_and_never_commit_on_their_own() -> None:
    config = base_consumer_config(Settings().kafka, "g")
    assert config["isolation.level"] == "read_committed"
    assert config["enable.auto.commit"] is False
