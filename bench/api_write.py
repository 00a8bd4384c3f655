"""The API write path, three ways in one server (bench/api_variants.py), with a real
relay running as in production:

1. Throughput: requests/s and latency of each variant, closed loop (each connection
   sends its next request when the previous answered), variants interleaved per
   repeat so drift in the machine's load hits them alike.
2. Kafka outage: the broker is stopped, both the outbox route and the dual write take
   the same steady load, the broker is started again (always, in a finally) and the
   relay left to catch up. Then every project row is looked up on Kafka: a row
   without its `project.created` message is a lost event.

    python -m bench api-write --seconds 8 --repeat 3 --outage-seconds 10
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import uvloop

from bench.api_variants import DOMAIN_ONLY, DUAL_WRITE
from bench.common import (
    bench_settings,
    drop_run,
    median_spread,
    progress,
    wait_relay_caught_up,
    write_result,
)
from bench.kafka_read import read_values, relay_transactions
from bench.loadgen import Pool, RunStats, Target, closed_loop, open_loop, wait_until_up
from bench.procs import API_WORKERS, CpuWindow, Platform, free_port, load_average, relay_argv
from bench.profile import profile_process
from bench.users import PROJECTS, make_users, project_requests
from core.settings import Settings
from devenv.services import start_kafka, stop_kafka

VARIANTS = {"outbox": PROJECTS, "domain_only": DOMAIN_ONLY, "dual_write": DUAL_WRITE}
CONNECTIONS = 32
USERS = 200
OUTAGE_RATE = 50  # requests/s to each of the two routes while Kafka is down
RELAY_CATCH_UP_S = 180.0


def variant_argv(port: int, workers: int) -> list[str]:
    return [
        *(sys.executable, "-m", "bench.api_variants", "--port", str(port)),
        *("--workers", str(workers)),
    ]


async def measure(
    pool: Pool,
    requests: dict[str, Callable[[int], bytes]],
    seconds: float,
    repeat: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Closed-loop runs of each variant, `repeat` times, medians with spread."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in requests}
    names = list(requests)
    for run in range(repeat):
        # Rotate the order: none always runs first (or last) in a repeat.
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            load = load_average()
            window = CpuWindow(pids)
            window.start()
            stats = await closed_loop(pool, CONNECTIONS, seconds, requests[name])
            summary = {**stats.summary(), "load_average_before": load, "cpu": window.stop()}
            runs[name].append(summary)
            progress(
                f"  run {run + 1} {name}: {summary['achieved_per_s']} req/s, "
                f"p99 {summary['response_ms'].get('p99')} ms, {summary['statuses']}"
            )
    result: dict[str, Any] = {}
    for name, rows in runs.items():
        result[name] = {
            "requests_per_s": median_spread([r["achieved_per_s"] for r in rows]),
            "p50_ms": median_spread([r["response_ms"]["p50"] for r in rows]),
            "p99_ms": median_spread([r["response_ms"]["p99"] for r in rows]),
            # Where the CPU went (100 % = one core): is the API process the limit?
            **{
                f"{process}_cpu_percent": median_spread(
                    [r["cpu"].get(f"{process}_cpu_percent", 0.0) for r in rows]
                )
                for process in ("api", "relay", "postgres_server", "kafka_broker")
            },
            "runs": rows,
        }
    return result


async def throughput(
    pool: Pool,
    target: Target,
    users: list[tuple[int, str]],
    seconds: float,
    repeat: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    requests = {
        name: project_requests(target, users, path, label=name) for name, path in VARIANTS.items()
    }
    for name, request in requests.items():
        progress(f"warm-up {name}")
        await closed_loop(pool, CONNECTIONS, min(3.0, seconds), request)
    result = await measure(pool, requests, seconds, repeat, pids)
    rps = {name: result[name]["requests_per_s"]["median"] for name in VARIANTS}
    result["outbox_to_domain_only"] = round(rps["outbox"] / rps["domain_only"], 3)
    result["outbox_to_dual_write"] = round(rps["outbox"] / rps["dual_write"], 3)
    return result


async def relay_stopped(
    platform: Platform,
    settings: Settings,
    conn: asyncpg.Connection,
    pool: Pool,
    requests: dict[str, Callable[[int], bytes]],
    seconds: float,
    repeat: int,
) -> dict[str, Any]:
    """The outbox route again with the relay stopped (rows wait, then drain): the API
    side of the outbox alone, without the relay and broker sharing the 2 cores."""
    progress("outbox route with the relay stopped")
    await platform.stop_one("relay")
    try:
        pids = {**platform.pids, "loadgen": os.getpid()}
        result = await measure(pool, requests, seconds, repeat, pids)
    finally:
        await platform.start("relay", *relay_argv(), settings=settings)
    left = await wait_relay_caught_up(conn, RELAY_CATCH_UP_S)
    return {**result, "outbox_left_unpublished_after_restart": left}


async def published_project_ids(settings: Settings) -> set[int]:
    values = await asyncio.to_thread(
        read_values, settings.kafka.bootstrap_servers, settings.kafka.topics.project
    )
    return {
        int(v["data"]["project_id"]) for v in values if v.get("event_type") == "project.created"
    }


async def kafka_outage(
    settings: Settings, target: Target, conn: asyncpg.Connection, seconds: float
) -> dict[str, Any]:
    """Same load on the outbox route and the dual write while the broker is down."""
    owners = {name: await make_users(settings, 50) for name in ("outbox", "dual_write")}
    pools = {name: Pool(target, 64) for name in owners}
    requests = {
        name: project_requests(target, owners[name], VARIANTS[name], label=f"outage {name}")
        for name in owners
    }
    outcome: dict[str, RunStats] = {}
    progress("stopping Kafka")
    started = time.monotonic()
    try:
        await asyncio.to_thread(stop_kafka, settings)
        progress(f"Kafka stopped; {OUTAGE_RATE} req/s to each route for {seconds} s")
        runs = await asyncio.gather(
            *(open_loop(pools[n], OUTAGE_RATE, seconds, requests[n]) for n in owners)
        )
        outcome = dict(zip(owners, runs, strict=True))
    finally:
        progress("starting Kafka again")
        await asyncio.to_thread(start_kafka, settings)
        for pool in pools.values():
            pool.close()
    down_s = time.monotonic() - started
    progress(f"Kafka back after {down_s:.0f} s; waiting for the relay to catch up")
    backlog = await wait_relay_caught_up(conn, RELAY_CATCH_UP_S)
    on_kafka = await published_project_ids(settings)
    result: dict[str, Any] = {"kafka_down_s": round(down_s, 1), "outbox_left_unpublished": backlog}
    for name, stats in outcome.items():
        rows = await conn.fetch(
            "SELECT id FROM projects WHERE owner_id = ANY($1::bigint[])",
            [uid for uid, _ in owners[name]],
        )
        ids = {int(r["id"]) for r in rows}
        acknowledged = {int(json.loads(o.body)["id"]) for o in stats.ok()}
        result[name] = {
            **stats.summary(),
            "domain_rows": len(ids),
            "events_on_kafka": len(ids & on_kafka),
            "events_lost": len(ids - on_kafka),
            # The worst case: the client was told "created", the event never came.
            "lost_after_2xx": len(acknowledged - on_kafka),
        }
        progress(f"  {name}: {result[name]['statuses']}, lost {result[name]['events_lost']}")
    return result


async def run(
    settings: Settings, seconds: float, repeat: int, outage_s: float, workers: int
) -> dict[str, Any]:
    users = await make_users(settings, USERS)
    port = free_port()
    target = Target("127.0.0.1", port)
    platform = Platform()
    pool = Pool(target, CONNECTIONS)
    conn = await asyncpg.connect(settings.database.libpq_url)
    result: dict[str, Any] = {}
    try:
        await platform.start("relay", *relay_argv(), settings=settings)
        await platform.start("api", *variant_argv(port, workers), settings=settings)
        await wait_until_up(pool, target)
        pids = {**platform.pids, "loadgen": os.getpid()}
        result["throughput"] = await throughput(pool, target, users, seconds, repeat, pids)
        # Many small Kafka transactions cost the broker far more than the events.
        result["relay_during_throughput"] = await asyncio.to_thread(
            relay_transactions,
            settings.kafka.bootstrap_servers,
            settings.kafka.topics.checkpoint,
            range(1, 2**62),
        )
        peaks = platform.peak_rss_mb()  # the relay is restarted below: keep its peak
        stopped = {"outbox_relay_stopped": project_requests(target, users, PROJECTS, "stopped")}
        result["throughput"] |= await relay_stopped(
            platform, settings, conn, pool, stopped, seconds, repeat
        )
        with_relay = result["throughput"]["outbox"]["requests_per_s"]["median"]
        without = result["throughput"]["outbox_relay_stopped"]["requests_per_s"]["median"]
        domain = result["throughput"]["domain_only"]["requests_per_s"]["median"]
        result["throughput"]["outbox_relay_stopped_to_domain_only"] = round(without / domain, 3)
        result["throughput"]["outbox_to_outbox_relay_stopped"] = round(with_relay / without, 3)
        platform.check_alive()
        progress("profiling the outbox route (py-spy, while under load)")
        outbox = project_requests(target, users, PROJECTS, label="profiled")
        load = asyncio.create_task(closed_loop(pool, CONNECTIONS, 8.0, outbox))
        result["profile_api_outbox"] = await profile_process(platform.pids["api"], "api_outbox")
        await load
        if outage_s > 0:
            result["kafka_outage"] = await kafka_outage(settings, target, conn, outage_s)
        result["peak_rss_mb"] = {
            name: max(mb, peaks.get(name, 0.0)) for name, mb in platform.peak_rss_mb().items()
        }
    finally:
        pool.close()
        await conn.close()
        await platform.stop()
    return result


def main(
    seconds: float, repeat: int, outage_s: float, workers: int = API_WORKERS
) -> dict[str, Any]:
    settings = bench_settings("api")
    try:
        result = uvloop.run(run(settings, seconds, repeat, outage_s, workers))
    finally:
        drop_run(settings)
    throughput_doc = result["throughput"]
    summary = {
        "server": "bench/api_variants.py: create_app(settings) + 2 bench routes; uvicorn, "
        f"{workers} worker(s) (uvloop + httptools), relay running",
        "api_workers": workers,
        "load_generator": f"bench/loadgen.py closed loop, {CONNECTIONS} keep-alive connections",
        "seconds_per_run": seconds,
        "repeat": repeat,
        "dual_write_message_timeout_ms": 5000,
        **result,
        "goal_outbox_cost_at_most_15_percent": throughput_doc["outbox_to_domain_only"] >= 0.85,
        "goal_outbox_beats_dual_write": throughput_doc["outbox_to_dual_write"] > 1.0,
    }
    write_result("api_write", summary)
    return summary
