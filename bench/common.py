"""What every benchmark shares: a fresh database and topics, result files, stats."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.db import recreate_database
from core.settings import Settings
from migrations import upgrade

RESULTS = Path(__file__).parent / "results"


def bench_settings(tag: str) -> Settings:
    """Settings on a fresh `connectin_bench_<tag>` database with run-unique topics."""
    base = Settings.from_env()
    database = asyncio.run(recreate_database(base.database, f"connectin_bench_{tag}"))
    upgrade(database.url)
    return replace(
        base,
        database=database,
        kafka=base.kafka.namespaced(f"bench-{tag}-{uuid.uuid4().hex[:6]}"),
        relay=replace(base.relay, metrics_port=0),
        consumers=replace(base.consumers, metrics_port=0),
    )


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
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2), flush=True)
    return path


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)
