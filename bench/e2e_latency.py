"""End-to-end latency through the whole platform: steady rates of `POST
/api/v1/projects` over HTTP against the real API (`connectin api`: uvicorn, one
worker), with a real relay and a real consumers process. Each request's effect is the
`projects` consumer's transaction (owner's project counter + `processed_events` row).

Latency of an event, from Postgres' own clock on this machine:
- upper bound: outbox.created_at (the API transaction's start, i.e. before its
  commit) -> processed_events.processed_at (the consumer transaction's start; its
  commit follows by one fsync).
- lower bound: the HTTP response received by the load generator (after the API's
  commit) -> processed_at.
The headline figures are the upper bound.

    python -m bench e2e-latency --rates 100,1000,5000 --seconds 15
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import asyncpg
import uvloop

from bench.common import bench_settings, drop_run, percentiles, progress, write_result
from bench.kafka_read import relay_transactions
from bench.loadgen import Pool, RunStats, Target, open_loop, wait_until_up
from bench.procs import (
    API_WORKERS,
    CpuWindow,
    Platform,
    api_argv,
    consumers_argv,
    free_port,
    load_average,
    relay_argv,
)
from bench.users import make_users, project_requests
from core.settings import Settings

CONSUMER = "projects"
USERS = 200
# Enough for 5,000 req/s at up to ~12 ms each; when all are busy the generator waits
# (and reports it) rather than queueing without bound.
CONNECTIONS = 64
DRAIN_TIMEOUT_S = 120.0


def project_ids(stats: RunStats) -> dict[str, float]:
    """Project id (the event's aggregate_id) -> when its response was received."""
    return {str(json.loads(o.body)["id"]): o.answered for o in stats.ok()}


async def wait_processed(conn: asyncpg.Connection, expected: int) -> int:
    """Until the consumer has `expected` events done (or the timeout); returns how many."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        done = int(
            await conn.fetchval(
                "SELECT count(*) FROM processed_events WHERE consumer = $1", CONSUMER
            )
        )
        if done >= expected or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.1)


async def max_outbox_id(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox"))


async def latencies(conn: asyncpg.Connection, answered: dict[str, float]) -> dict[str, Any]:
    rows = await conn.fetch(
        """
        SELECT o.aggregate_id, extract(epoch FROM o.created_at) AS created,
               extract(epoch FROM o.published_at) AS published,
               extract(epoch FROM p.processed_at) AS processed
        FROM outbox o
        JOIN processed_events p ON p.consumer = $1 AND p.event_id = o.event_id
        WHERE o.aggregate_type = 'project' AND o.aggregate_id = ANY($2::text[])
        """,
        CONSUMER,
        list(answered),
    )
    upper = [(float(r["processed"]) - float(r["created"])) * 1000 for r in rows]
    lower = [(float(r["processed"]) - answered[r["aggregate_id"]]) * 1000 for r in rows]
    # Where the time goes: until the relay marked the row (its Kafka transaction
    # committed), then Kafka delivery + the consumer's transaction.
    relay = [(float(r["published"]) - float(r["created"])) * 1000 for r in rows]
    consumer = [(float(r["processed"]) - float(r["published"])) * 1000 for r in rows]
    return {
        "events": len(answered),
        "not_processed": len(answered) - len(rows),
        "commit_to_effect_ms": percentiles(upper) if rows else {},
        "response_to_effect_ms": percentiles(lower) if rows else {},
        "created_to_published_ms": percentiles(relay) if rows else {},
        "published_to_processed_ms": percentiles(consumer) if rows else {},
    }


def cpu_budget(per_event_us: dict[str, float]) -> dict[str, Any]:
    """CPU per event of each process (Postgres and the broker included, the load
    generator not: a client is elsewhere in production), and the rate at which that
    cost would keep every core busy: the ceiling this machine puts on the platform,
    whatever the queueing. At a low rate idle work (polling) counts per event too,
    so the ceiling is truest near saturation."""
    platform = {k: v for k, v in per_event_us.items() if k != "loadgen"}
    total = sum(platform.values())
    return {
        "cpu_us_per_event": {**platform, "total": round(total, 1)},
        "ceiling_per_s": round(len(os.sched_getaffinity(0)) * 1e6 / total) if total else None,
    }


async def run(
    settings: Settings, rates: list[int], seconds: float, warmup_s: float, workers: int
) -> Any:
    users = await make_users(settings, USERS)
    port = free_port()
    target = Target("127.0.0.1", port)
    platform = Platform()
    pool = Pool(target, CONNECTIONS)
    conn = await asyncpg.connect(settings.database.libpq_url)
    runs: list[dict[str, Any]] = []
    try:
        await platform.start("relay", *relay_argv(), settings=settings)
        await platform.start("consumers", *consumers_argv(), settings=settings)
        await platform.start("api", *api_argv(port, workers), settings=settings)
        await wait_until_up(pool, target)
        request = project_requests(target, users)
        # Warm-up: every process connected and past its first requests, the consumer
        # group assigned; the run starts only once these are all processed.
        progress(f"warm-up: 100 req/s for {warmup_s} s")
        warm = await open_loop(pool, 100, warmup_s, request)
        created = len(warm.ok())
        if await wait_processed(conn, created) < created:
            raise RuntimeError("warm-up events were not processed: is the consumer running?")
        for rate in rates:
            platform.check_alive()
            load = load_average()
            progress(f"{rate} req/s for {seconds} s (load average {load})")
            window = CpuWindow({**platform.pids, "loadgen": os.getpid()})
            first_id = await max_outbox_id(conn) + 1
            window.start()
            stats = await open_loop(pool, rate, seconds, request)
            cpu = window.stop()
            answered = project_ids(stats)
            created += len(answered)
            await wait_processed(conn, created)
            batches = await asyncio.to_thread(
                relay_transactions,
                settings.kafka.bootstrap_servers,
                settings.kafka.topics.checkpoint,
                range(first_id, await max_outbox_id(conn) + 1),
            )
            row = {
                "target_per_s": rate,
                "load_average_before": load,
                "load": stats.summary(),
                "cpu": cpu,
                **cpu_budget(window.per_event_us(cpu, len(answered))),
                "relay": batches,
                **await latencies(conn, answered),
            }
            progress(
                f"  achieved {row['load']['achieved_per_s']}/s, "
                f"commit->effect {row['commit_to_effect_ms']}"
            )
            runs.append(row)
        peaks = platform.peak_rss_mb()
    finally:
        pool.close()
        await conn.close()
        await platform.stop()
    return {"runs": runs, "peak_rss_mb": peaks}


def main(
    rates: list[int], seconds: float, warmup_s: float = 3.0, workers: int = API_WORKERS
) -> dict[str, Any]:
    settings = bench_settings("e2e")
    try:
        result = uvloop.run(run(settings, rates, seconds, warmup_s, workers))
    finally:
        drop_run(settings)
    summary = {
        "api": f"connectin api --workers {workers} (uvicorn, uvloop + httptools)",
        "api_workers": workers,
        "load_generator": "bench/loadgen.py: asyncio on uvloop + httptools, HTTP/1.1 "
        f"keep-alive, open loop over {CONNECTIONS} connections, same process as the runner",
        "users": USERS,
        "consumer": CONSUMER,
        "seconds_per_rate": seconds,
        "latency": "commit_to_effect = outbox.created_at -> processed_events.processed_at "
        "(upper bound, headline); response_to_effect = HTTP response -> processed_at "
        "(lower bound)",
        **result,
    }
    write_result("e2e_latency", summary)
    return summary
