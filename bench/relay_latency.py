"""Commit-to-Kafka latency at a steady rate: writers commit one event per statement
through the real outbox writer (with a domain row, as the API writes it), a real relay
process publishes, and a read_committed consumer notes when each event becomes
visible. Latency = visible - committed. Per rate also the events per Kafka transaction
(from the checkpoint records) and the relay's and the broker's CPU while the writers
ran: each Kafka transaction costs the broker far more than its events do (markers on
every partition it touched, the transaction log), so the broker's CPU per transaction
is reported beside the relay's.

Each rate runs once per `--shards` value (RELAY_SHARDS: one Kafka transaction stream
per shard) and `--accumulate-ms` value (RELAY_ACCUMULATE_MS), so the cost and the gain
of either are ratios of one run:

    python -m bench relay-latency --rates 100,1000,5000 --seconds 15 --accumulate-ms 0,10 \
        --shards 4,1
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
from confluent_kafka import Consumer

from bench.common import (
    bench_settings,
    drop_run,
    percentiles,
    progress,
    wait_relay_caught_up,
    write_result,
)
from bench.kafka_read import relay_transactions
from bench.procs import cpu_seconds, load_average, service_pids
from core.outbox import InsertWithEvent, NewEvent, insert_with_event
from core.settings import Settings
from core.topics import ensure_topics
from relay.service import relay_topics

WRITERS = 16
WARMUP_S = 1.0


class VisibilityClock:
    """A read_committed consumer in a process of its own, recording when each event_id
    became visible. Not a thread beside the writers: a thread waiting for the GIL
    waits up to the switch interval (5 ms) whenever the writers' event loop holds it,
    and that wait would be counted as the relay's latency."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._parent, child = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_watch_visibility,
            args=(settings.kafka.bootstrap_servers, list(settings.kafka.topics.event_topics)),
            kwargs={"ready": self._ready, "stop": self._stop, "out": child},
            daemon=True,
        )

    def start(self, timeout_s: float = 60) -> None:
        """Returns once the consumer has its assignment, so no event is missed."""
        self._process.start()
        if not self._ready.wait(timeout_s):
            self._process.kill()
            raise RuntimeError(f"the visibility clock got no assignment in {timeout_s}s")

    def stop(self) -> dict[str, float]:
        """Ends the clock; event_id -> when it became visible (time.time())."""
        self._stop.set()
        if not self._parent.poll(30 if self._process.is_alive() else 0):
            self._process.kill()
            raise RuntimeError(f"the visibility clock ended with {self._process.exitcode}")
        seen: dict[str, float] = self._parent.recv()
        self._process.join(30)
        return seen


def _watch_visibility(
    bootstrap_servers: str, topics: list[str], *, ready: Any, stop: Any, out: Any
) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"bench-latency-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.subscribe(topics)
    while not consumer.assignment():
        consumer.poll(0.1)
    ready.set()
    seen: dict[str, float] = {}
    while not stop.is_set():
        # poll(), not consume(n, t): consume waits for n messages or the whole
        # timeout, which would add up to t to every measurement.
        msg = consumer.poll(0.05)
        if msg is not None and msg.error() is None:
            now = time.time()
            seen[json.loads(msg.value() or b"{}")["event_id"]] = now
    consumer.close()
    out.send(seen)


# Each event with a domain row, as the API writes it: one statement, outside any
# transaction (core.outbox.InsertWithEvent), on a bare asyncpg connection. Writers
# through SQLAlchemy sessions (BEGIN, statement, COMMIT) spent ~1 ms of CPU per event in
# this process: at a 1,000/s target they reached ~700/s, took a core from the relay,
# Postgres and the broker, and stamped commits late on a busy event loop.
_WRITE = InsertWithEvent.of(
    "INSERT INTO projects (owner_id, title, description) VALUES ($1, $2, $3) RETURNING id",
    domain_params=3,
)


@dataclass(frozen=True)
class Writers:
    """The writers' connections and the user who owns their projects, for a rate's
    warm-up and its measured run alike."""

    pool: asyncpg.Pool
    owner: int


@asynccontextmanager
async def writers(settings: Settings) -> AsyncIterator[Writers]:
    pool = await asyncpg.create_pool(
        settings.database.libpq_url, min_size=WRITERS, max_size=WRITERS
    )
    try:
        owner = await pool.fetchval(
            "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
            name := f"bench-writer-{uuid.uuid4().hex[:8]}",
            f"{name}@example.com",
        )
        yield Writers(pool, owner)
    finally:
        await pool.close()


async def steady_writes(
    settings: Settings,
    through: Writers,
    rate: int,
    seconds: float,
    committed: dict[str, float],
    outbox_ids: list[int],
) -> tuple[float, float]:
    """(how far the writers fell behind schedule at worst, seconds they took)."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    counter = iter(range(total))
    lag: list[float] = []

    async def writer(conn: asyncpg.Connection) -> None:
        for n in counter:
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag.append(-delay)
            event = NewEvent(
                settings.kafka.topics.event_topics[n % 4],
                "bench.event",
                "agg",
                str(n % 500),
                {"n": n, "filler": "x" * 120},
                user_id=n,
            )
            _, stored = await insert_with_event(
                conn,
                _WRITE,
                (through.owner, f"bench {n}", ""),
                event,
                shards=settings.relay.shards,
            )
            committed[str(event.event_id)] = time.time()
            outbox_ids.append(stored.outbox_id)

    async def one_writer() -> None:
        async with through.pool.acquire() as conn:
            await writer(conn)

    await asyncio.gather(*(one_writer() for _ in range(WRITERS)))
    return max(lag, default=0.0), time.perf_counter() - start


async def wait_published(settings: Settings, timeout_s: float = 60) -> None:
    conn = await asyncpg.connect(settings.database.libpq_url)
    try:
        left = await wait_relay_caught_up(conn, timeout_s)
    finally:
        await conn.close()
    if left:
        raise RuntimeError(f"{left} outbox rows still unpublished after the run")


async def one_rate(settings: Settings, rate: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, **settings.to_env(), "LOG_LEVEL": "WARNING"}
    relay = await asyncio.create_subprocess_exec(sys.executable, "-m", "relay", env=env)
    clock = VisibilityClock(settings)
    load = load_average()
    seen: dict[str, float] = {}
    try:
        await asyncio.to_thread(clock.start)
        await asyncio.sleep(2)  # relay start-up: leases, init_transactions
        if relay.returncode is not None:
            raise RuntimeError(f"the relay exited at start-up with {relay.returncode}")
        committed: dict[str, float] = {}
        outbox_ids: list[int] = []
        brokers = service_pids()["kafka_broker"]
        async with writers(settings) as through:
            # Fresh topics make the first transactions slow (28-96 ms commits against
            # 10-20 in the steady state): warm them at the rate, outside the figures,
            # the broker's CPU included.
            await steady_writes(settings, through, rate, WARMUP_S, {}, [])
            broker_before = sum(cpu_seconds(pid) for pid in brokers)
            cpu_before, wall_before = cpu_seconds(relay.pid), time.monotonic()
            behind, took = await steady_writes(
                settings, through, rate, seconds, committed, outbox_ids
            )
        # Also what the next run needs: it may use fewer shards, and a row left
        # unpublished would make its relay refuse to start.
        await wait_published(settings)
        wall = time.monotonic() - wall_before
        relay_cores = (cpu_seconds(relay.pid) - cpu_before) / wall
        broker_s = sum(cpu_seconds(pid) for pid in brokers) - broker_before
        # Every row is marked, so committed in Kafka: give the clock time to read them.
        await asyncio.sleep(1)
    finally:
        seen = await asyncio.to_thread(clock.stop)
        relay.terminate()
        await asyncio.wait_for(relay.wait(), 30)
    missing = len(committed.keys() - seen.keys())
    latencies = [(seen[i] - t) * 1000 for i, t in committed.items() if i in seen]
    transactions = await asyncio.to_thread(
        relay_transactions,
        settings.kafka.bootstrap_servers,
        settings.kafka.topics.checkpoint,
        range(min(outbox_ids), max(outbox_ids) + 1),
    )
    count = transactions.get("kafka_transactions") or 0
    return {
        "rate": rate,
        "shards": settings.relay.shards,
        "accumulate_ms": settings.relay.accumulate_ms,
        "warmup_s": WARMUP_S,
        "events": len(committed),
        "achieved_per_s": round(len(committed) / took, 1),
        "missing": missing,
        "writer_max_behind_schedule_ms": round(behind * 1000, 1),
        "latency_ms": percentiles(latencies),
        **transactions,
        "relay_cpu_cores": round(relay_cores, 3),
        # The broker also serves the visibility clock's reads: the same in every run.
        # Empty when the broker is not a process of this machine (Docker, remote).
        "broker_cpu_cores": round(broker_s / wall, 3) if brokers else None,
        "broker_cpu_ms_per_transaction": (
            round(1000 * broker_s / count, 2) if brokers and count else None
        ),
        "load_average_before": load,
    }


def with_partitions(settings: Settings, partitions: int) -> Settings:
    """The same platform on event topics of their own with `partitions` partitions
    each (a topic's count only grows, so another count needs other topics)."""
    if partitions == settings.kafka.topics.partitions:
        return settings
    t = settings.kafka.topics
    topics = replace(
        t,
        user=f"p{partitions}-{t.user}",
        project=f"p{partitions}-{t.project}",
        message=f"p{partitions}-{t.message}",
        payment=f"p{partitions}-{t.payment}",
        partitions=partitions,
    )
    return replace(settings, kafka=replace(settings.kafka, topics=topics))


def main(
    rates: list[int],
    seconds: float,
    accumulate: list[int] | None = None,
    shards: list[int] | None = None,
    partitions: list[int] | None = None,
) -> dict[str, Any]:
    """Every rate at each shard count and accumulation; other partition counts of the
    event topics (each partition a transaction touches costs the broker a marker, see
    bench/txn_cost.py) at the default shards and accumulation."""
    base = bench_settings("latency")
    default = (base.kafka.topics.partitions, base.relay.shards, base.relay.accumulate_ms)
    setups = [
        (default[0], shard_count, accumulate_ms)
        for shard_count in shards or [default[1]]
        for accumulate_ms in accumulate or [default[2]]
    ]
    setups += [(count, *default[1:]) for count in partitions or [] if count != default[0]]
    results = []
    try:
        for partition_count, shard_count, accumulate_ms in setups:
            # Every run ends with its rows published (wait_published), so a lower shard
            # count strands none; a higher one grows the checkpoint topic.
            settings = with_partitions(base, partition_count)
            settings = replace(
                settings,
                relay=replace(settings.relay, shards=shard_count, accumulate_ms=accumulate_ms),
            )
            ensure_topics(settings.kafka.bootstrap_servers, relay_topics(settings))
            for rate in rates:
                progress(
                    f"steady {rate} events/s for {seconds}s, {shard_count} shard(s), "
                    f"accumulate {accumulate_ms} ms, {partition_count} partitions per topic"
                )
                run = asyncio.run(one_rate(settings, rate, seconds))
                results.append({**run, "partitions": partition_count})
                progress(
                    f"  {run['latency_ms']}; {run['events_per_transaction']} events per"
                    f" transaction; relay {run['relay_cpu_cores']} cores, broker "
                    f"{run['broker_cpu_cores']} cores"
                )
    finally:
        drop_run(base)
    summary = {
        "relay_idle_poll_ms": base.relay.idle_poll_ms,
        "default_shards": default[1],
        "default_accumulate_ms": default[2],
        "default_partitions": default[0],
        "runs": results,
    }
    write_result("relay_latency", summary)
    return summary
