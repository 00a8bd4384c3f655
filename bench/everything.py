"""`python -m bench all [--quick | --full]`: every benchmark in turn, then the memory
summary and `bench/results/summary.json`.

Sizes: the default takes ~20 minutes on 2 cores; `--quick` (~3 minutes) is a smoke
run with small samples; `--full` adds the 5 M-row growth step. The load average
before each step is recorded: on a shared machine, compare figures of one run only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import (
    api_write,
    e2e_latency,
    growth,
    hop_cost,
    memory,
    relay_drain,
    relay_latency,
    scaling,
    summary,
    txn_cost,
)
from bench.common import progress
from bench.procs import foreign_activity, load_average
from bench.warmup import warm_broker
from core.settings import Settings


@dataclass(frozen=True)
class Plan:
    drain_events: int
    e2e_seconds: float
    e2e_warmup: float
    api_seconds: float
    outage_seconds: float
    scaling_events: int
    consumer_events: int
    scaling_repeat: int
    growth_sizes: tuple[int, ...]
    growth_backlog: int
    relay_latency_seconds: float
    txn_cost_transactions: int
    repeat: int = 3


DEFAULT = Plan(
    drain_events=200_000,
    e2e_seconds=15,
    e2e_warmup=3,
    api_seconds=8,
    outage_seconds=10,
    scaling_events=100_000,
    consumer_events=40_000,
    scaling_repeat=3,
    growth_sizes=(0, 100_000, 1_000_000),
    growth_backlog=20_000,
    relay_latency_seconds=15,
    txn_cost_transactions=300,
)
QUICK = Plan(
    drain_events=30_000,
    e2e_seconds=5,
    e2e_warmup=2,
    api_seconds=3,
    outage_seconds=6,
    scaling_events=20_000,
    consumer_events=3_000,
    scaling_repeat=1,
    growth_sizes=(0, 100_000),
    growth_backlog=10_000,
    relay_latency_seconds=5,
    txn_cost_transactions=50,
)
FULL_GROWTH = (0, 100_000, 1_000_000, 5_000_000)
E2E_RATES = [100, 1000, 5000]
# 0 (publish what one fetch finds) beside the default: the gain and the latency cost
# of waiting for more rows are ratios of the same run.
RELAY_ACCUMULATE_COMPARED = [0, Settings().relay.accumulate_ms]
# The default beside two partitions per event topic: a transaction at 1,000 events/s
# touches ~16 of the default 24 partitions, and each costs the broker a marker.
RELAY_PARTITIONS_COMPARED = sorted({Settings().kafka.topics.partitions, 2})
# One partition up to every partition of the four event topics at the default count.
TXN_PARTITIONS = sorted({1, 2, 6, 12, 4 * Settings().kafka.topics.partitions})
# The default beside four shards (four relays publishing at once): each shard is a
# stream of Kafka transactions, and a transaction costs the broker more than its events.
RELAY_SHARDS_COMPARED = sorted({Settings().relay.shards, 4})


def main(*, quick: bool = False, full: bool = False) -> dict[str, Any]:
    plan = QUICK if quick else DEFAULT
    sizes = list(FULL_GROWTH if full else plan.growth_sizes)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("hop-cost", lambda: hop_cost.main(plan.repeat)),
        ("relay-drain", lambda: relay_drain.main(plan.drain_events, 5000, plan.repeat, 4, 1)),
        (
            "relay-latency",
            lambda: relay_latency.main(
                E2E_RATES,
                plan.relay_latency_seconds,
                RELAY_ACCUMULATE_COMPARED,
                RELAY_SHARDS_COMPARED,
                RELAY_PARTITIONS_COMPARED,
            ),
        ),
        ("txn-cost", lambda: txn_cost.main(plan.txn_cost_transactions, 25, TXN_PARTITIONS, 2)),
        (
            "e2e-latency",
            lambda: e2e_latency.main(E2E_RATES, plan.e2e_seconds, plan.e2e_warmup),
        ),
        (
            "api-write",
            lambda: api_write.main(plan.api_seconds, plan.repeat, plan.outage_seconds),
        ),
        (
            "scaling",
            lambda: scaling.main(plan.scaling_events, plan.consumer_events, plan.scaling_repeat),
        ),
        ("growth", lambda: growth.main(sizes, plan.growth_backlog)),
        ("memory", memory.main),
    ]
    loads: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    others: dict[str, list[str]] = {}
    settings = Settings.from_env()
    warmups: dict[str, dict[str, object]] = {}
    for name, step in steps:
        if name not in ("memory", "hop-cost"):
            # Before every step, not once: api-write restarts the broker (its outage).
            warmups[name] = warm_broker(settings)
        loads[name] = load_average()
        others[name] = foreign_activity()
        progress(f"=== {name} (load average {loads[name]}; other activity {others[name]})")
        started = time.monotonic()
        step()
        timings[name] = round(time.monotonic() - started, 1)
        progress(f"=== {name} took {timings[name]} s")
    doc = summary.main(loads, others, warmups)
    progress(f"all done in {sum(timings.values()):.0f} s: {timings}")
    return doc
