"""The status snapshot as Prometheus metrics, served on the API's /metrics.

These are the numbers alerting needs that no single process can report about itself:
which shards have a leader (a dead relay exports nothing), the oldest unpublished
event even when every relay is down, consumer lag (offsets live in Kafka, not in the
consumer process) and dead letters waiting for an operator.

A scrape never waits for Postgres or Kafka: `collect()` serves the last snapshot and,
when it is older than `max_age_s`, starts a refresh on the running event loop for the
next scrape. So the values are at most about one scrape interval old, and an API that
nobody scrapes does no status work at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.status.model import StatusSnapshot

log = structlog.get_logger(__name__)

PREFIX = "connectin_status_"

# name (without PREFIX) -> (help, labels); the metric catalogue in docs/metrics.md.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "up": (
        "1 when the last status snapshot read every part (Postgres and Kafka), else 0",
        (),
    ),
    "snapshot_timestamp_seconds": ("Unix time the served status snapshot was taken", ()),
    "relays_connected": ("Relay lease connections open in Postgres", ()),
    "shard_leader": ("1 when a relay holds the shard's leadership lock, else 0", ("shard",)),
    "outbox_pending_events": ("Unpublished outbox events per shard (from Postgres)", ("shard",)),
    "outbox_oldest_unpublished_age_seconds": (
        "Age of the oldest unpublished outbox event per shard, 0 when none (from Postgres)",
        ("shard",),
    ),
    "consumer_lag": (
        "Events a consumer group has yet to process: read_committed end offset minus "
        "committed offset",
        ("group", "topic", "partition"),
    ),
    "consumer_group_members": ("Members of a consumer group", ("group",)),
    "dead_letters_unreplayed": (
        "Dead letters not replayed yet, per original topic",
        ("topic",),
    ),
}

Refresh = Callable[[], Awaitable[StatusSnapshot]]


def _family(name: str) -> GaugeMetricFamily:
    help_text, labels = METRICS[name]
    return GaugeMetricFamily(PREFIX + name, help_text, labels=list(labels))


class StatusMetrics(Collector):
    def __init__(self, refresh: Refresh, *, max_age_s: float = 10.0) -> None:
        self._refresh = refresh
        self._max_age_s = max_age_s
        self._snapshot: StatusSnapshot | None = None
        self._taken = 0.0
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Lets the registry check names without taking a snapshot at registration.
        return [_family(name) for name in METRICS]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self._maybe_refresh()
        if self._snapshot is not None:
            yield from families(self._snapshot)

    async def refresh_now(self) -> None:
        await self._update()

    def _maybe_refresh(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._snapshot is not None and time.monotonic() - self._taken < self._max_age_s:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Scraped outside the app's event loop (a test calling generate_latest):
            # nothing to schedule the refresh on, serve what we have.
            return
        self._task = loop.create_task(self._update(), name="status-metrics-refresh")
        self._task.add_done_callback(_log_failure)

    async def close(self) -> None:
        """Cancel a refresh in flight (the app is stopping and disposes its engine)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _update(self) -> None:
        snapshot = await self._refresh()
        self._snapshot = snapshot
        self._taken = time.monotonic()
        if snapshot.errors:
            log.warning("status snapshot incomplete", errors=list(snapshot.errors))


def _log_failure(task: asyncio.Task[None]) -> None:
    # Unreachable stores are reported inside the snapshot; what reaches here is a bug,
    # logged rather than lost as "exception never retrieved". The next scrape retries.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("status metrics refresh failed", exc_info=exc)


def families(snapshot: StatusSnapshot) -> list[GaugeMetricFamily]:
    out = {name: _family(name) for name in METRICS}
    out["up"].add_metric([], 0.0 if snapshot.errors else 1.0)
    out["snapshot_timestamp_seconds"].add_metric([], snapshot.taken_at.timestamp())
    if snapshot.outbox is not None:
        out["relays_connected"].add_metric([], snapshot.outbox.relays_connected)
        for shard in snapshot.outbox.shards:
            label = [str(shard.shard)]
            out["shard_leader"].add_metric(label, 0.0 if shard.leader is None else 1.0)
            out["outbox_pending_events"].add_metric(label, shard.pending)
            out["outbox_oldest_unpublished_age_seconds"].add_metric(label, shard.oldest_age_s)
    if snapshot.consumers is not None:
        for group in snapshot.consumers.groups:
            out["consumer_group_members"].add_metric([group.consumer], group.members)
            for p in group.partitions:
                out["consumer_lag"].add_metric([group.consumer, p.topic, str(p.partition)], p.lag)
    if snapshot.dead_letters is not None:
        for topic, count in snapshot.dead_letters.unreplayed_by_topic:
            out["dead_letters_unreplayed"].add_metric([topic], count)
    return list(out.values())
