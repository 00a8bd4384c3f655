"""What every benchmark shares: a fresh database and topics, result files, stats."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka.admin import AdminClient

from core.db import drop_database, recreate_database
from core.kafka import admin_config
from core.settings import TEST, Settings
from migrations import upgrade

RESULTS = Path(__file__).parent / "results"

# Foreign processes that were running when this run started with --allow-noise (see
# bench/__main__.py); every result file of the run records them.
NOISE: list[str] = []


def bench_settings(tag: str) -> Settings:
    """Settings on a fresh `connectin_bench_<tag>_<run>` database with topics of the
    same run. Run-unique, not one name per benchmark: two people benchmarking on one
    server would otherwise drop and refill each other's database mid-run. Give them
    back with drop_run() when done."""
    run = uuid.uuid4().hex[:6]
    base = Settings.from_env()
    database = asyncio.run(recreate_database(base.database, f"connectin_bench_{tag}_{run}"))
    upgrade(database.url)
    return replace(
        base,
        # Throwaway databases and topics: the published default secrets are fine, and
        # the processes the benchmark starts get this through Settings.to_env().
        environment=TEST,
        database=database,
        kafka=base.kafka.namespaced(f"bench-{tag}-{run}"),
        relay=replace(base.relay, metrics_port=0),
        consumers=replace(base.consumers, metrics_port=0),
    )


async def wait_relay_caught_up(conn: asyncpg.Connection, timeout_s: float) -> int:
    """Unpublished outbox rows left after waiting up to `timeout_s` (0: the relay
    caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


def drop_run(settings: Settings) -> None:
    """Delete the run's database and topics: left behind, every run adds a database
    and ~30 partitions, and thousands of partitions slow the shared broker's start."""
    suffix = settings.kafka.transactional_id_prefix.split("-", 1)[1]
    if not suffix.startswith("bench-"):
        raise ValueError(f"not a benchmark's namespace: {suffix!r}")
    database = settings.database.url.rsplit("/", 1)[1].split("?")[0]
    if database.startswith("connectin_bench_"):
        _drop_database(settings, database)
    admin = AdminClient(admin_config(settings.kafka.bootstrap_servers))
    topics = [
        topic
        for topic in admin.list_topics(timeout=30).topics
        if topic.endswith(f"-{suffix}") or topic.endswith(f"-{suffix}.dlq")
    ]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


def _drop_database(settings: Settings, name: str) -> None:
    """Best effort: a database the drop still cannot remove after its retries is
    reported, it does not fail the benchmark whose figures are already taken."""
    try:
        asyncio.run(drop_database(settings.database, name))
    except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError) as exc:
        progress(f"could not drop database {name}, left behind: {exc}")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": round(at(0.50), 3),
        "p95": round(at(0.95), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


def ratio_of_medians(numerator: list[float], denominator: list[float]) -> float:
    return round(statistics.median(numerator) / statistics.median(denominator), 3)


def median_spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "runs": len(values),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "name": name,
        "generated_at": datetime.now(UTC).isoformat(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        **result,
    }
    doc["noisy"] = bool(NOISE) or bool(result.get("noisy"))
    if NOISE:
        doc["noise"] = NOISE
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2), flush=True)
    return path


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)
