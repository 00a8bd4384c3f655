"""`bench/results/summary.json`: the headline figures (medians) of the result files,
with the issue's goals checked against them.

    python -m bench summary
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import RESULTS, write_result

DRAIN = "relay_drain_4shards_1proc"


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _e2e_at(e2e: dict[str, Any], rate: int) -> dict[str, Any]:
    return next((r for r in e2e.get("runs", []) if r["target_per_s"] == rate), {})


def _relay_runs(latency: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    """Runs whose fields equal `match`, on the default partition count unless `match`
    names one; a run from before shards (partitions) were compared ran on the default
    shard (partition) count."""
    default = {
        "shards": latency.get("default_shards"),
        "partitions": latency.get("default_partitions"),
    }
    match = {"partitions": default["partitions"], **match}
    return [
        r
        for r in latency.get("runs", [])
        if all({**default, **r}.get(k) == v for k, v in match.items())
    ]


def _relay_at(latency: dict[str, Any], rate: int, accumulate_ms: int | None) -> dict[str, Any]:
    shards = latency.get("default_shards")
    runs = _relay_runs(latency, rate=rate, accumulate_ms=accumulate_ms, shards=shards)
    return runs[0] if runs else {}


def _relay_by(latency: dict[str, Any], field: str) -> dict[str, dict[str, Any]]:
    """value of `field` -> rate -> figures, every other setting at its default."""
    defaults = {
        "shards": latency.get("default_shards"),
        "accumulate_ms": latency.get("default_accumulate_ms"),
        "partitions": latency.get("default_partitions"),
    }
    values = sorted({r.get(field) for r in latency.get("runs", [])} - {None})
    return {
        str(value): {
            str(x["rate"]): _relay_figures(x)
            for x in _relay_runs(latency, **{**defaults, field: value})
        }
        for value in values
    }


def _relay_figures(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "events_per_transaction": run["events_per_transaction"],
        "relay_cpu_cores": run["relay_cpu_cores"],
        "broker_cpu_cores": run.get("broker_cpu_cores"),
        "visible_p99_ms": run["latency_ms"].get("p99"),
        "achieved_per_s": run["achieved_per_s"],
    }


def build(
    load_averages: dict[str, list[float]] | None = None,
    other_activity: dict[str, list[str]] | None = None,
    broker_warmups: dict[str, dict[str, object]] | None = None,
) -> dict[str, Any]:
    drain, e2e, api = _load(DRAIN), _load("e2e_latency"), _load("api_write")
    scaling, memory, growth = _load("scaling"), _load("memory"), _load("growth")
    relay_latency, txn_cost = _load("relay_latency"), _load("txn_cost")
    hops = _load("hop_cost")
    consumers = scaling.get("consumers", {})
    relay_at_1000 = _relay_at(relay_latency, 1000, relay_latency.get("default_accumulate_ms"))
    at_1000 = _e2e_at(e2e, 1000)
    latency = at_1000.get("commit_to_effect_ms", {})
    throughput = api.get("throughput", {})

    def rps(variant: str) -> float | None:
        row = throughput.get(variant)
        return row["requests_per_s"]["median"] if row else None

    doc: dict[str, Any] = {
        "relay_drain_events_per_s": drain.get("relay_events_per_s", {}).get("median"),
        "raw_producer_events_per_s": drain.get("raw_producer_events_per_s", {}).get("median"),
        "relay_to_raw_ratio": drain.get("ratio_relay_to_raw"),
        # The relay's own CPU per fetched row against the bare driver's (older drain
        # results have neither).
        "relay_fetch_cpu_us_per_row": drain.get("fetch_cpu_us_per_row", {}).get("median"),
        "relay_fetch_to_driver_ratio": drain.get("ratio_fetch_to_driver"),
        "e2e_p50_ms_at_1000": latency.get("p50"),
        "e2e_p95_ms_at_1000": latency.get("p95"),
        "e2e_p99_ms_at_1000": latency.get("p99"),
        "e2e_max_ms_at_1000": latency.get("max"),
        "e2e_achieved_per_s_at_1000": at_1000.get("load", {}).get("achieved_per_s"),
        # CPU per event by process at the 1,000/s target, and the rate at which that
        # cost fills every core: the machine's ceiling on the platform.
        "e2e_cpu_us_per_event_at_1000": at_1000.get("cpu_us_per_event"),
        "e2e_ceiling_per_s_at_1000": at_1000.get("ceiling_per_s"),
        "e2e_by_target_rate": {
            str(r["target_per_s"]): {
                "achieved_per_s": r["load"]["achieved_per_s"],
                "commit_to_effect_ms": r["commit_to_effect_ms"],
            }
            for r in e2e.get("runs", [])
        },
        "api_outbox_rps": rps("outbox"),
        "api_domain_only_rps": rps("domain_only"),
        "api_dual_write_rps": rps("dual_write"),
        # The API side of the outbox alone: the same route while the relay is stopped.
        "api_outbox_relay_stopped_rps": rps("outbox_relay_stopped"),
        "relay_during_api_write": api.get("relay_during_throughput"),
        "api_outbox_p99_ms": throughput.get("outbox", {}).get("p99_ms", {}).get("median"),
        "api_domain_only_p99_ms": throughput.get("domain_only", {}).get("p99_ms", {}).get("median"),
        "api_dual_write_p99_ms": throughput.get("dual_write", {}).get("p99_ms", {}).get("median"),
        "api_kafka_outage": {
            name: {k: row.get(k) for k in ("statuses", "domain_rows", "events_lost")}
            for name, row in api.get("kafka_outage", {}).items()
            if isinstance(row, dict)
        },
        "relay_scaling_events_per_s": {
            setup: row["relay_events_per_s"]["median"]
            for setup, row in scaling.get("relay", {}).items()
        },
        "consumer_scaling_events_per_s": {
            setup: consumers[setup]["events_per_s"]["median"]
            for setup in ("1proc", "2proc")
            if setup in consumers
        },
        "consumer_workload": consumers.get("event_type"),
        "consumer_events_per_s_1proc": consumers.get("1proc", {})
        .get("events_per_s", {})
        .get("median"),
        "consumer_events_per_s_2proc": consumers.get("2proc", {})
        .get("events_per_s", {})
        .get("median"),
        "relay_accumulate_ms": relay_latency.get("default_accumulate_ms"),
        "relay_events_per_txn_at_1000": relay_at_1000.get("events_per_transaction"),
        "relay_cpu_cores_at_1000": relay_at_1000.get("relay_cpu_cores"),
        "relay_visible_p99_ms_at_1000": relay_at_1000.get("latency_ms", {}).get("p99"),
        "relay_achieved_per_s_at_1000": relay_at_1000.get("achieved_per_s"),
        "relay_shards": relay_latency.get("default_shards"),
        "relay_broker_cpu_cores_at_1000": relay_at_1000.get("broker_cpu_cores"),
        # Every rate with each RELAY_ACCUMULATE_MS (0 = no waiting), RELAY_SHARDS and
        # TOPIC_PARTITIONS the run compared, the other two at their defaults. The
        # partitions a transaction touches are the broker's cost (bench txn-cost).
        "relay_by_accumulate_ms": _relay_by(relay_latency, "accumulate_ms"),
        "relay_by_shards": _relay_by(relay_latency, "shards"),
        "relay_by_partitions": _relay_by(relay_latency, "partitions"),
        # A Kafka transaction of the same events by the partitions it touches (no relay):
        # the commit's wall time and the broker's CPU, the floor under the relay's.
        "kafka_txn_by_partitions": {
            count: {
                "commit_p50_ms": row["commit_ms"]["p50"],
                "commit_p99_ms": row["commit_ms"]["p99"],
                "broker_cpu_ms": row["broker_cpu_ms_per_transaction"],
            }
            for count, row in txn_cost.get("by_partitions", {}).items()
        },
        # What a hop between processes costs this machine (no platform code): figures of
        # runs on two machines compare only beside these.
        "machine_hop_cost": {k: v for k, v in hops.items() if k.startswith(("postgres", "socket"))},
        "api_workers": api.get("api_workers"),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "growth_drain_events_per_s": {
            str(r["published_rows"]): r["drain_events_per_s"] for r in growth.get("runs", [])
        },
        "load_average_before_each": load_averages or {},
        "broker_warmup_before_each": broker_warmups or {},
        # Other test runs/benchmarks/platform processes seen as each step began.
        "other_activity_before_each": other_activity or {},
    }
    sources = (drain, e2e, api, scaling, memory, growth, relay_latency, txn_cost, hops)
    doc["noisy"] = any(r.get("noisy") for r in sources) or any((other_activity or {}).values())
    doc["goals"] = goals(doc, drain)
    return doc


def goals(doc: dict[str, Any], drain: dict[str, Any]) -> dict[str, bool | None]:
    def at_least(value: Any, bound: float) -> bool | None:
        return None if value is None else bool(value >= bound)

    def at_most(value: Any, bound: float) -> bool | None:
        return None if value is None else bool(value <= bound)

    outbox, domain = doc["api_outbox_rps"], doc["api_domain_only_rps"]
    dual = doc["api_dual_write_rps"]
    outage = doc["api_kafka_outage"]
    outage_held: bool | None = None
    if "outbox" in outage and "dual_write" in outage:
        ob, dw = outage["outbox"], outage["dual_write"]
        outage_held = (
            set(ob["statuses"]) == {"2xx"}
            and ob["events_lost"] == 0
            and (dw["events_lost"] > 0 or set(dw["statuses"]) != {"2xx"})
        )
    one, two = doc["consumer_events_per_s_1proc"], doc["consumer_events_per_s_2proc"]
    return {
        "consumer_1proc_at_least_5000_per_s": at_least(one, 5000),
        "consumer_2proc_at_least_1.6x_1proc": None
        if one is None or two is None
        else two >= 1.6 * one,
        "relay_at_least_10_events_per_txn_at_1000": at_least(
            doc["relay_events_per_txn_at_1000"], 10
        ),
        "relay_at_most_0.15_core_at_1000": at_most(doc["relay_cpu_cores_at_1000"], 0.15),
        "relay_visible_p99_at_most_25_ms_at_1000": at_most(doc["relay_visible_p99_ms_at_1000"], 25),
        "api_outbox_at_least_1000_rps": at_least(outbox, 1000),
        "relay_drain_at_least_40000_per_s": at_least(doc["relay_drain_events_per_s"], 40_000),
        "relay_to_raw_at_least_0.5": at_least(drain.get("ratio_relay_to_raw"), 0.5),
        "e2e_p99_at_most_50_ms_at_1000": at_most(doc["e2e_p99_ms_at_1000"], 50),
        "e2e_1000_per_s_achieved": at_least(doc["e2e_achieved_per_s_at_1000"], 950),
        "outbox_costs_at_most_15_percent": None
        if outbox is None or domain is None
        else outbox / domain >= 0.85,
        "outbox_beats_dual_write": None if outbox is None or dual is None else outbox > dual,
        "kafka_down_outbox_all_2xx_none_lost_dual_write_fails": outage_held,
        "relay_consumers_api_worker_at_most_150_mb": None
        if not doc["peak_rss_mb"]
        else all(doc["peak_rss_mb"].get(k, 0) <= 150 for k in ("relay", "consumers", "api")),
    }


def main(
    load_averages: dict[str, list[float]] | None = None,
    other_activity: dict[str, list[str]] | None = None,
    broker_warmups: dict[str, dict[str, object]] | None = None,
) -> dict[str, Any]:
    doc = build(load_averages, other_activity, broker_warmups)
    write_result("summary", doc)
    return doc
