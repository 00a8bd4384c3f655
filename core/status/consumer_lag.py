"""Consumer lag per group and partition, read from Kafka with the admin API only.

Consumer groups are found by the names core/kafka.py gives them rather than imported
from consumers/ (operators' tools must not load a process package): a consumer named
`users` runs as group `<transactional id prefix>-users`. Lag = end offset - committed
offset, where the end offset is the last stable offset (read_committed), the last
record a consumer of the group can read; an open relay transaction is not counted as
lag.

All calls block (librdkafka futures): callers run `read_consumer_lag` in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    OffsetSpec,
)

from core.kafka import STATUS_CLIENT_ID, admin_config, consumer_name
from core.settings import KafkaSettings
from core.status.model import ConsumersStatus, GroupStatus, PartitionLag

TP = tuple[str, int]

# librdkafka's stubs leave these classmethods untyped.
LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


def admin_client(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(
        admin_config(kafka.bootstrap_servers, client_id=STATUS_CLIENT_ID, quiet=True)
    )


class ConsumerLagReader:
    """Reuses one admin client across snapshots (`connectin status --watch`, the API)."""

    def __init__(self, kafka: KafkaSettings, *, timeout_s: float = 5.0) -> None:
        self._kafka = kafka
        self._timeout = timeout_s
        self._admin = admin_client(kafka)

    def read(self) -> ConsumersStatus:
        listing = self._admin.list_consumer_groups(request_timeout=self._timeout).result()
        if listing.errors:
            # A broker that did not answer may coordinate some of our groups: a partial
            # list would silently hide their lag.
            raise KafkaException(listing.errors[0])
        consumers = {
            g.group_id: name
            for g in listing.valid
            if (name := consumer_name(self._kafka, g.group_id)) is not None
        }
        group_ids = sorted(consumers)
        if not group_ids:
            return ConsumersStatus(())
        descriptions = self._describe(group_ids)
        committed = {gid: self._committed(gid) for gid in group_ids}
        # Only this deployment's topics: another deployment whose prefix happens to
        # extend ours ("connectin-staging") reads topics of its own.
        ours = set(self._kafka.topics.event_topics)
        topics = {
            tp[0]
            for gid in group_ids
            for tp in (*committed[gid], *_assigned(descriptions.get(gid)))
            if tp[0] in ours
        }
        partitions = self._partitions(topics)
        end = self._offsets(partitions, LATEST)
        # Where a group with no committed offset would start (auto.offset.reset=earliest).
        uncommitted = {
            tp for gid in group_ids for tp in partitions if committed[gid].get(tp) is None
        }
        start = self._offsets(sorted(uncommitted), EARLIEST)
        groups = []
        for gid in group_ids:
            group_topics = {tp[0] for tp in (*committed[gid], *_assigned(descriptions.get(gid)))}
            rows = tuple(
                _lag(tp, committed[gid].get(tp), end[tp], start.get(tp, 0))
                for tp in partitions
                if tp[0] in group_topics and tp in end
            )
            if not rows:
                continue
            description = descriptions.get(gid)
            groups.append(
                GroupStatus(
                    consumer=consumers[gid],
                    group_id=gid,
                    state=_state_name(description),
                    members=len(description.members) if description is not None else 0,
                    partitions=rows,
                )
            )
        return ConsumersStatus(tuple(groups))

    def _describe(self, group_ids: list[str]) -> dict[str, Any]:
        futures = self._admin.describe_consumer_groups(group_ids, request_timeout=self._timeout)
        return {gid: future.result() for gid, future in futures.items()}

    def _committed(self, group_id: str) -> dict[TP, int | None]:
        # One group per request: that is all the admin API accepts.
        request = [ConsumerGroupTopicPartitions(group_id)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=self._timeout)
        result = futures[group_id].result()
        return {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in result.topic_partitions or []
            if tp.error is None
        }

    def _partitions(self, topics: Iterable[str]) -> list[TP]:
        wanted = set(topics)
        if not wanted:
            return []
        metadata = self._admin.list_topics(timeout=self._timeout).topics
        return sorted(
            (name, partition)
            for name in wanted
            if name in metadata
            for partition in metadata[name].partitions
        )

    def _offsets(self, partitions: Iterable[TP], spec: OffsetSpec) -> dict[TP, int]:
        request = {TopicPartition(t, p): spec for t, p in partitions}
        if not request:
            return {}
        futures = self._admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self._timeout,
        )
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}


def _assigned(description: Any) -> list[TP]:
    """Partitions members hold right now: a group shows up before its first commit."""
    if description is None:
        return []
    return [
        (tp.topic, tp.partition)
        for member in description.members
        for tp in (member.assignment.topic_partitions if member.assignment else [])
    ]


def _state_name(description: Any) -> str:
    if description is None:
        return "UNKNOWN"
    state = description.state
    return str(getattr(state, "name", state))


def _lag(tp: TP, committed: int | None, end: int, start: int) -> PartitionLag:
    origin = start if committed is None else committed
    return PartitionLag(
        topic=tp[0], partition=tp[1], committed=committed, end=end, lag=max(0, end - origin)
    )
