"""How should an idle relay learn of new rows? LISTEN/NOTIFY against our adaptive
polling, measured on the two things that matter:

1. What the wake-up costs writers: 16 concurrent writers committing one event per
   transaction through the real outbox writer, plain (polling needs nothing from
   them) against the same plus `pg_notify` (NOTIFY takes a database-wide lock at
   commit, serializing committers).
2. What it costs Postgres when idle: CPU seconds used by an idle relay's process and
   its Postgres backends over a quiet period (polling's price).

    python -m bench wakeup --transactions 3000 --repeat 3
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bench.common import (
    bench_settings,
    drop_run,
    median_spread,
    progress,
    ratio_of_medians,
    write_result,
)
from core.db import create_engine
from core.outbox import NewEvent, enqueue
from core.settings import Settings
from core.topics import ensure_topics
from relay.service import relay_topics

WRITERS = 16
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def writer_throughput(settings: Settings, transactions: int, notify: bool) -> float:
    engine = create_engine(settings.database, application_name="bench-wakeup")
    sessions = async_sessionmaker(engine)
    todo = iter(range(transactions))
    topic = settings.kafka.topics.project

    async def writer() -> None:
        for n in todo:
            async with sessions.begin() as session:
                stored = await enqueue(
                    session,
                    NewEvent(topic, "bench.event", "agg", str(n % 1000), {"n": n}),
                    shards=settings.relay.shards,
                )
                if notify:
                    await session.execute(
                        text("SELECT pg_notify('connectin_outbox', :shard)"),
                        {"shard": str(stored.shard)},
                    )

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return transactions / elapsed


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def idle_relay_cost(settings: Settings, seconds: float) -> dict[str, float]:
    engine = create_engine(settings.database, application_name="bench-wakeup")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE outbox SET published_at = now()")
    env = {**os.environ, **settings.to_env(), "LOG_LEVEL": "WARNING"}
    relay = await asyncio.create_subprocess_exec(sys.executable, "-m", "relay", env=env)
    try:
        await asyncio.sleep(3)
        async with engine.connect() as conn:
            backends = [
                int(r[0])
                for r in await conn.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE application_name LIKE 'connectin-relay%'"
                )
            ]
        pids = [relay.pid, *backends]
        before = {pid: cpu_seconds(pid) for pid in pids}
        await asyncio.sleep(seconds)
        used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    finally:
        relay.terminate()
        await relay.wait()
        await engine.dispose()
    return {
        "relay_process_cpu_percent": round(100 * used[relay.pid] / seconds, 2),
        "postgres_backends_cpu_percent": round(
            100 * sum(v for p, v in used.items() if p != relay.pid) / seconds, 2
        ),
    }


def main(transactions: int, repeat: int) -> dict[str, Any]:
    settings = bench_settings("wakeup")
    ensure_topics(settings.kafka.bootstrap_servers, relay_topics(settings))
    plain: list[float] = []
    notified: list[float] = []
    try:
        for run in range(repeat):
            progress(f"run {run + 1}/{repeat}: {WRITERS} writers, {transactions} tx each way")
            plain.append(asyncio.run(writer_throughput(settings, transactions, notify=False)))
            notified.append(asyncio.run(writer_throughput(settings, transactions, notify=True)))
            progress(f"  plain {plain[-1]:,.0f} tx/s, with NOTIFY {notified[-1]:,.0f} tx/s")
        progress("idle relay for 20 s")
        idle = asyncio.run(idle_relay_cost(settings, 20))
    finally:
        drop_run(settings)
    summary = {
        "writers": WRITERS,
        "plain_tx_per_s": median_spread(plain),
        "notify_tx_per_s": median_spread(notified),
        "notify_to_plain_ratio": ratio_of_medians(notified, plain),
        "idle_poll_ms": settings.relay.idle_poll_ms,
        "idle_relay": idle,
    }
    write_result("wakeup", summary)
    return summary
