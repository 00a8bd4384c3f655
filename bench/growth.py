"""Growth: does the relay slow down as the outbox table grows? For each size, the
table holds that many published rows (older than the retention age) plus a fresh
backlog; we time the relay's own fetch query (a full batch), drain the backlog with a
real relay, then time retention deleting the old rows. Size 0 is the baseline of the
same run.

    python -m bench growth --sizes 0,100000,1000000,5000000 --backlog 20000
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import bench_settings, drop_run, progress, write_result
from bench.relay_drain import drain_with_relay, fill, truncate_outbox
from core.db import create_engine
from core.outbox_store import _FETCH
from core.settings import Settings
from core.topics import ensure_topics
from relay.retention import delete_published
from relay.service import relay_topics


async def fetch_query_ms(settings: Settings, runs: int = 50) -> float:
    engine = create_engine(settings.database, application_name="bench-growth")
    timings = []
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for n in range(runs):
            started = time.perf_counter()
            await driver.fetch(_FETCH, [n % settings.relay.shards], settings.relay.batch_size, [])
            timings.append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    return round(statistics.median(timings), 3)


async def retention(settings: Settings) -> dict[str, float]:
    engine = create_engine(settings.database, application_name="bench-growth")
    started = time.perf_counter()
    reported = 0

    def report(deleted: int) -> None:
        nonlocal reported
        if deleted - reported >= 500_000:
            reported = deleted
            progress(f"    retention deleted {deleted:,}")

    run = await delete_published(
        engine,
        age_s=settings.relay.retention_hours * 3600,
        batch=settings.relay.retention_batch,
        on_progress=report,
    )
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return {
        "deleted": run.deleted,
        "rows_per_s": round(run.deleted / elapsed) if elapsed else 0.0,
    }


async def delete_backlog(settings: Settings) -> None:
    engine = create_engine(settings.database, application_name="bench-growth")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM outbox WHERE published_at IS NULL")
    await engine.dispose()


async def table_mb(settings: Settings) -> float:
    engine = create_engine(settings.database, application_name="bench-growth")
    async with engine.connect() as conn:
        size = (await conn.exec_driver_sql("SELECT pg_total_relation_size('outbox')")).scalar_one()
    await engine.dispose()
    return round(float(size) / 2**20, 1)


def main(sizes: list[int], backlog: int) -> dict[str, Any]:
    settings = bench_settings("growth")
    try:
        summary = measure(settings, sizes, backlog)
    finally:
        drop_run(settings)
    write_result("growth", summary)
    return summary


def measure(settings: Settings, sizes: list[int], backlog: int) -> dict[str, Any]:
    ensure_topics(settings.kafka.bootstrap_servers, relay_topics(settings))
    old = datetime.now(UTC) - timedelta(hours=settings.relay.retention_hours + 1)
    runs = []
    for size in sizes:
        progress(f"{size:,} published rows + {backlog:,} backlog")
        asyncio.run(truncate_outbox(settings))
        if size:
            asyncio.run(fill(settings, size, 5000, aggregate="hist", published_at=old))
        asyncio.run(fill(settings, backlog, 5000, truncate=False))
        row: dict[str, Any] = {"published_rows": size, "backlog": backlog}
        row["table_mb"] = asyncio.run(table_mb(settings))
        row["fetch_batch_ms"] = asyncio.run(fetch_query_ms(settings))
        # The drain fills its own backlog in one transaction once the relay is ready.
        asyncio.run(delete_backlog(settings))
        row["drain_events_per_s"] = round(
            asyncio.run(drain_with_relay(settings, backlog, 5000))["events_per_s"]
        )
        row["retention"] = asyncio.run(retention(settings))
        progress(f"  {row}")
        runs.append(row)
    return {"batch_size": settings.relay.batch_size, "runs": runs}
