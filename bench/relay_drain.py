"""Relay drain: a pre-filled outbox of N events (~300-byte values, many keys) drained
by a real relay process, beside a raw confluent-kafka transactional producer sending
the same messages in the same batches with the same parallelism (no Postgres).

Before each drain, the relay's fetch is timed on the filled outbox: the CPU this
process spends per row in `OutboxStore.fetch` (query, rows, headers parsed) against a
bare asyncpg fetch of the same statement and rows, which is its floor.

    python -m bench relay-drain --events 200000 --repeat 3
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import (
    bench_settings,
    drop_run,
    median_spread,
    progress,
    ratio_of_medians,
    write_result,
)
from bench.procs import load_average, status_kb
from core.db import create_engine
from core.kafka import transactional_producer_config
from core.leadership import lock_namespace
from core.outbox import shard_of
from core.outbox_store import _FETCH, OutboxStore
from core.settings import Settings
from core.topics import ensure_topics
from relay.service import relay_topics

FILLER = "x" * 40  # envelope + filler = ~300 bytes per value

_FILL = text(
    """
    INSERT INTO outbox (event_id, topic, key, event_type, aggregate_type, aggregate_id,
                        sequence, payload, headers, shard, created_at, published_at)
    SELECT e.id, (CAST(:topics AS text[]))[1 + e.k % 4], :agg || ':' || e.k, 'bench.event', :agg,
           e.k::text, e.seq,
           jsonb_build_object('event_id', e.id, 'event_type', 'bench.event',
               'aggregate_type', 'agg', 'aggregate_id', e.k::text, 'sequence', e.seq,
               'schema_version', 1, 'timestamp', now(), 'user_id', e.k,
               'data', jsonb_build_object('n', e.g, 'filler', CAST(:filler AS text))),
           jsonb_build_object('event_id', e.id, 'event_type', 'bench.event',
               'content-type', 'application/json', 'ce_specversion', '1.0', 'ce_id', e.id,
               'ce_source', '/connectin/agg', 'ce_type', 'bench.event', 'ce_time', now()),
           (CAST(:shards AS int[]))[1 + e.k],
           coalesce(CAST(:published_at AS timestamptz), now()), CAST(:published_at AS timestamptz)
    FROM (SELECT g, gen_random_uuid() AS id, g % :keys AS k, g / :keys + 1 AS seq
          FROM generate_series(:start, :stop - 1) AS g) AS e
    """
)


async def fill(
    settings: Settings,
    events: int,
    keys: int,
    *,
    truncate: bool = True,
    aggregate: str = "agg",
    published_at: datetime | None = None,
    step: int = 50_000,
    analyze: bool = True,
) -> None:
    """Bulk-load `events` outbox rows, unpublished unless `published_at` is given,
    committing every `step` rows."""
    engine = create_engine(settings.database, application_name="bench-fill")
    shards = [shard_of(f"{aggregate}:{k}", settings.relay.shards) for k in range(keys)]
    if truncate:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("TRUNCATE outbox")
    for start in range(0, events, step):
        async with engine.begin() as conn:
            await conn.execute(
                _FILL,
                {
                    "topics": list(settings.kafka.topics.event_topics),
                    "filler": FILLER,
                    "shards": shards,
                    "keys": keys,
                    "agg": aggregate,
                    "published_at": published_at,
                    "start": start,
                    "stop": min(events, start + step),
                },
            )
    if analyze:
        async with engine.connect() as conn:
            # A freshly bulk-loaded table has no statistics yet; real outboxes do.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE outbox")
    await engine.dispose()


async def truncate_outbox(settings: Settings) -> None:
    engine = create_engine(settings.database, application_name="bench-fill")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE outbox")
    await engine.dispose()


async def relay_pids(engine: AsyncEngine, settings: Settings) -> dict[int, int]:
    """pid -> shards it leads."""
    namespace = lock_namespace(settings.kafka.transactional_id_prefix)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 2 AND classid = CAST(:ns AS int)::oid GROUP BY pid"
            ),
            {"ns": namespace},
        )
        return {int(pid): int(n) for pid, n in rows}


async def drain_with_relay(
    settings: Settings, events: int, keys: int, processes: int = 1
) -> dict[str, float]:
    """Start `processes` relays, wait until they have split the shards, then commit the
    whole backlog in ONE transaction, so every relay sees all of it at once, and time
    the drain from that commit to the last mark."""
    engine = create_engine(settings.database, application_name="bench-watch")
    env = {**os.environ, **settings.to_env(), "LOG_LEVEL": "WARNING"}
    relays = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "relay", env=env)
        for _ in range(processes)
    ]
    share = -(-settings.relay.shards // processes)
    try:
        while True:
            split = await relay_pids(engine, settings)
            settled = len(split) == processes and max(split.values()) <= share
            if settled and sum(split.values()) == settings.relay.shards:
                break
            await asyncio.sleep(0.2)
        # No VACUUM after it: the relays drain while it would run, and the clock
        # starts at the commit.
        await fill(settings, events, keys, truncate=False, step=events, analyze=False)
        async with engine.connect() as conn:
            committed_at = (await conn.exec_driver_sql("SELECT now()")).scalar_one()
        started = time.perf_counter()
        while True:
            async with engine.connect() as conn:
                left = (
                    await conn.exec_driver_sql(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                    )
                ).scalar_one()
            if left == 0:
                break
            if any(relay.returncode is not None for relay in relays):
                raise RuntimeError("a relay exited during the drain")
            await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            spread = (
                await conn.execute(
                    text("SELECT extract(epoch FROM max(published_at) - :t) FROM outbox"),
                    {"t": committed_at},
                )
            ).scalar_one()
        # The kernel's high-water mark of each relay's memory (VmHWM), read while alive.
        peak_kb = max(status_kb(relay.pid, "VmHWM") for relay in relays)
    finally:
        for relay in relays:
            relay.terminate()
        for relay in relays:
            await asyncio.wait_for(relay.wait(), 30)
        await engine.dispose()
    return {
        "events_per_s": events / float(spread),
        "wall_s": time.perf_counter() - started,
        "relay_peak_rss_mb": round(peak_kb / 1024, 1),
    }


async def load_messages(settings: Settings) -> dict[int, list[tuple[str, bytes, bytes, Any]]]:
    engine = create_engine(settings.database, application_name="bench-load")
    by_shard: dict[int, list[tuple[str, bytes, bytes, Any]]] = {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT shard, topic, key, payload::text, headers::text FROM outbox ORDER BY id")
        )
        for shard, topic, key, value, headers in rows:
            by_shard.setdefault(shard, []).append(
                (topic, key.encode(), value.encode(), list(json.loads(headers).items()))
            )
    await engine.dispose()
    return by_shard


async def fetch_cpu(settings: Settings, rounds: int = 30) -> tuple[float, float]:
    """CPU microseconds per row of this process: (bare asyncpg fetch, relay's fetch),
    each the median of five passes of `rounds` fetches of one full batch of shard 0."""
    engine = create_engine(settings.database, application_name="bench-fetch")
    store = OutboxStore(engine)
    batch = settings.relay.batch_size
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            async def driver() -> int:
                return len(await raw.fetch(_FETCH, [0], batch, []))

            async def relay() -> int:
                return len(await store.fetch(0, batch))

            medians = []
            for fetch in (driver, relay):
                await fetch()
                passes = []
                for _ in range(5):
                    started, rows = time.process_time(), 0
                    for _ in range(rounds):
                        rows += await fetch()
                    passes.append((time.process_time() - started) / rows * 1e6)
                medians.append(statistics.median(passes))
    finally:
        await engine.dispose()
    return medians[0], medians[1]


def raw_producer(settings: Settings, by_shard: dict[int, list[Any]], run: int) -> float:
    """One transactional producer per shard, each in its own thread, same batches."""
    batch = settings.relay.batch_size
    errors: list[str] = []

    def produce(shard: int, messages: list[Any]) -> None:
        p = Producer(
            {
                **transactional_producer_config(
                    settings.kafka, f"{settings.kafka.transactional_id_prefix}-raw-{run}-{shard}"
                ),
                "compression.type": settings.relay.compression,
                "linger.ms": settings.relay.linger_ms,
            }
        )
        p.init_transactions(30)
        for start in range(0, len(messages), batch):
            p.begin_transaction()
            for topic, key, value, headers in messages[start : start + batch]:
                p.produce(topic, value, key, headers=headers)
            p.commit_transaction(30)
        if p.flush(10):
            errors.append(f"shard {shard}: unflushed messages")

    threads = [
        threading.Thread(target=produce, args=(shard, msgs)) for shard, msgs in by_shard.items()
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError("; ".join(errors))
    return sum(len(m) for m in by_shard.values()) / elapsed


def main(events: int, keys: int, repeat: int, shards: int, processes: int = 1) -> dict[str, Any]:
    settings = bench_settings("drain")
    settings = replace(settings, relay=replace(settings.relay, shards=shards))
    try:
        summary = measure(settings, events, keys, repeat, processes)
    finally:
        drop_run(settings)
    write_result(f"relay_drain_{shards}shards_{processes}proc", summary)
    return summary


def measure(
    settings: Settings, events: int, keys: int, repeat: int, processes: int
) -> dict[str, Any]:
    ensure_topics(settings.kafka.bootstrap_servers, relay_topics(settings))
    relay_rates: list[float] = []
    raw_rates: list[float] = []
    peak_rss_mb = 0.0
    loads: list[list[float]] = []
    driver_fetch: list[float] = []
    relay_fetch: list[float] = []
    for run in range(repeat):
        loads.append(load_average())
        progress(f"run {run + 1}/{repeat}: filling outbox with {events} events")
        asyncio.run(fill(settings, events, keys))
        driver_us, relay_us = asyncio.run(fetch_cpu(settings))
        driver_fetch.append(driver_us)
        relay_fetch.append(relay_us)
        progress(f"  fetch CPU per row: {relay_us:.2f} us (bare driver {driver_us:.2f} us)")
        by_shard = asyncio.run(load_messages(settings))
        asyncio.run(truncate_outbox(settings))
        progress("raw transactional producer")
        raw_rates.append(raw_producer(settings, by_shard, run))
        progress(f"  raw: {raw_rates[-1]:,.0f} events/s; relay draining")
        result = asyncio.run(drain_with_relay(settings, events, keys, processes))
        relay_rates.append(result["events_per_s"])
        peak_rss_mb = max(peak_rss_mb, result["relay_peak_rss_mb"])
        progress(f"  relay: {relay_rates[-1]:,.0f} events/s")
    summary = {
        "events": events,
        "keys": keys,
        "shards": settings.relay.shards,
        "relay_processes": processes,
        "batch_size": settings.relay.batch_size,
        "value_bytes": len(by_shard[next(iter(by_shard))][0][2]),
        "relay_events_per_s": median_spread(relay_rates),
        "raw_producer_events_per_s": median_spread(raw_rates),
        "ratio_relay_to_raw": ratio_of_medians(relay_rates, raw_rates),
        "relay_peak_rss_mb": peak_rss_mb,
        "fetch_cpu_us_per_row": median_spread(relay_fetch),
        "driver_fetch_cpu_us_per_row": median_spread(driver_fetch),
        "ratio_fetch_to_driver": ratio_of_medians(relay_fetch, driver_fetch),
        "load_average_before_runs": loads,
    }
    return summary
