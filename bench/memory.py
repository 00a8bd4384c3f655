"""Memory: the peak resident memory (kernel VmHWM, read from /proc just before each
process was stopped) of the api, relay and consumer processes during the other
benchmarks, against the goal (relay and each consumer <= 150 MB), and the bounds on
every queue, read from the code's own configuration rather than restated.

    python -m bench memory      (from the result files the other benchmarks wrote)
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import RESULTS, write_result
from consumers.reader import HOLD_RECORDS, consumer_config
from consumers.worker import MAX_BATCH
from core.settings import Settings
from relay.producer import producer_config

GOAL_MB = 150.0


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def peaks() -> dict[str, dict[str, float]]:
    """Per benchmark, process name -> peak RSS in MB."""
    found: dict[str, dict[str, float]] = {}
    drain = _load("relay_drain_4shards_1proc")
    if drain and "relay_peak_rss_mb" in drain:
        found["relay_drain"] = {"relay": drain["relay_peak_rss_mb"]}
    for name in ("e2e_latency", "api_write"):
        doc = _load(name)
        if doc and "peak_rss_mb" in doc:
            found[name] = doc["peak_rss_mb"]
    scaling = _load("scaling")
    if scaling:
        for setup, row in scaling["relay"].items():
            found[f"scaling_relay_{setup}"] = {"relay": row["relay_peak_rss_mb"]}
        for setup in ("1proc", "2proc"):
            found[f"scaling_consumers_{setup}"] = scaling["consumers"][setup]["peak_rss_mb"]
    return found


def bounds(settings: Settings) -> dict[str, Any]:
    relay = producer_config(settings.kafka, settings.relay, 0)
    consumer = consumer_config(settings.kafka, "projects", None)
    return {
        "relay": {
            "rows_in_memory_per_shard": settings.relay.batch_size,
            "why": "a shard fetches one batch, publishes it in one transaction and marks "
            "it before fetching the next: at most shards x batch_size rows in flight",
            "librdkafka_queue_buffering_max_messages": relay["queue.buffering.max.messages"],
            "librdkafka_queue_buffering_max_kbytes": relay["queue.buffering.max.kbytes"],
        },
        "consumers": {
            "records_per_partition_per_poll": MAX_BATCH,
            "records_read_ahead": HOLD_RECORDS,
            "why": "a worker reads ahead at most HOLD_RECORDS records, hands out at most "
            "MAX_BATCH per partition per poll and handles them all before polling again; "
            "librdkafka's prefetch is capped per consumer group",
            "librdkafka_queued_max_messages_kbytes": consumer["queued.max.messages.kbytes"],
            "librdkafka_queued_min_messages": consumer["queued.min.messages"],
        },
        "database_pool_per_process": settings.database.pool_size + settings.database.max_overflow,
    }


def main() -> dict[str, Any]:
    found = peaks()
    worst: dict[str, float] = {}
    for processes in found.values():
        for name, mb in processes.items():
            kind = name.split("-")[0]  # consumers-1, consumers-2 -> consumers
            worst[kind] = max(worst.get(kind, 0.0), mb)
    summary = {
        "goal_mb": GOAL_MB,
        "peak_rss_mb_by_benchmark": found,
        "peak_rss_mb": worst,
        "goal_met": {
            kind: mb <= GOAL_MB
            for kind, mb in worst.items()
            if kind in ("relay", "consumers", "api")
        },
        "bounded_queues": bounds(Settings()),
    }
    write_result("memory", summary)
    return summary
