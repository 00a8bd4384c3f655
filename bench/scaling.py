"""Scaling: relay throughput with 1, 2 and 4 relay processes and with 1 vs 8 shards
(bench/relay_drain.py, each against its raw-producer baseline of the same run); and
consumer throughput with 1 and 2 consumer processes.

Consumers: N envelopes are published straight to the workload's topic, in one Kafka
transaction, once every consumer process has joined the group and holds partitions;
the rate is N over the time from the transaction's commit (before it, a read_committed
consumer sees none of them) to the last `processed_events` row. Publishing them one by
one beside the consumers used to put the publisher's CPU (30-37 % of a core) in the
consumers' time. Workloads: `welcome` (`user.registered` -> the users consumer's welcome
notification, the issue's yardstick) and `counter` (`project.created` -> the owner's
project count, 200 owners shared by every partition).

    python -m bench scaling --events 100000 --consumer-events 20000 --repeat 3
    python -m bench consumers --events 20000 --repeat 3 --workload welcome
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from bench import relay_drain
from bench.common import bench_settings, drop_run, median_spread, progress, write_result
from bench.kafka_read import KafkaMessage, publish, publish_at_once
from bench.procs import CpuWindow, Platform, consumers_argv, load_average
from bench.profile import Markers, profile_process
from bench.users import make_users
from consumers.registry import TopicRole, topic_name
from core.envelope import SCHEMA_VERSION, Envelope, kafka_headers
from core.kafka import admin_config, group_id
from core.settings import Settings


@dataclass(frozen=True)
class Workload:
    consumer: str
    role: TopicRole
    event_type: str
    aggregate_type: str

    def data(self, n: int, owner: int) -> dict[str, Any]:
        if self.aggregate_type == "user":
            return {"user_id": owner, "username": f"bench{owner}"}
        return {"project_id": n, "owner_id": owner, "title": f"project {n}"}


WORKLOADS = {
    "welcome": Workload("users", "user", "user.registered", "user"),
    "counter": Workload("projects", "project", "project.created", "project"),
}
RELAY_SETUPS = [(8, 1), (8, 2), (8, 4), (1, 1)]  # (shards, relay processes)
JOIN_TIMEOUT_S = 60.0
PROFILE_EVENTS = 4000
# Where a consumer's time goes (see bench/profile.py on SQLAlchemy's greenlet stacks).
CONSUMER_MARKERS: Markers = {
    "record_transaction_total": ("Inbox.apply",),
    "handler_orm_update_count_project": ("count_project", "_BulkORMUpdate"),
    "transaction_commit": (
        "Session.commit (",
        "SessionTransaction.commit",
        "AsyncSessionTransaction.__aexit__",
    ),
    "pool_pre_ping": ("_async_ping",),
    "kafka_reader": ("Reader.",),
    "envelope_parse": ("Envelope.parse",),
    "structlog_context": ("bound_contextvars",),
}
DRAIN_TIMEOUT_S = 300.0


def relay_scaling(events: int, repeat: int) -> dict[str, Any]:
    rows = {}
    for shards, processes in RELAY_SETUPS:
        progress(f"relay scaling: {shards} shards, {processes} relay process(es)")
        result = relay_drain.main(events, 5000, repeat, shards, processes)
        rows[f"{shards}shards_{processes}proc"] = {
            "relay_events_per_s": result["relay_events_per_s"],
            "raw_producer_events_per_s": result["raw_producer_events_per_s"],
            "ratio_relay_to_raw": result["ratio_relay_to_raw"],
            "relay_peak_rss_mb": result["relay_peak_rss_mb"],
        }
    return rows


def envelopes(
    settings: Settings, workload: Workload, owners: list[int], count: int, first: int
) -> list[KafkaMessage]:
    """The workload's events for aggregates first..first+count-1, as the relay would
    publish them (value and headers)."""
    now = datetime.now(UTC)
    messages: list[KafkaMessage] = []
    for n in range(first, first + count):
        event_id = uuid.uuid4()
        owner = owners[n % len(owners)]
        value = Envelope(
            event_id=event_id,
            event_type=workload.event_type,
            aggregate_type=workload.aggregate_type,
            aggregate_id=str(n),
            sequence=1,
            schema_version=SCHEMA_VERSION,
            timestamp=now,
            user_id=owner,
            data=workload.data(n, owner),
        ).to_dict()
        headers = kafka_headers(
            event_id=event_id,
            event_type=workload.event_type,
            aggregate_type=workload.aggregate_type,
            time=now,
            traceparent=None,
        )
        messages.append(
            (
                topic_name(settings.kafka.topics, workload.role),
                f"{workload.aggregate_type}:{n}".encode(),
                json.dumps(value, separators=(",", ":")).encode(),
                list(headers.items()),
            )
        )
    return messages


def group_ready(settings: Settings, workload: Workload, members: int) -> bool:
    """`members` members, stable, every partition of the workload's topic assigned."""
    admin = AdminClient(admin_config(settings.kafka.bootstrap_servers))
    group = group_id(settings.kafka, workload.consumer)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
    return (
        description.state == ConsumerGroupState.STABLE
        and len(description.members) == members
        and assigned == settings.kafka.topics.partitions
        and all(m.assignment.topic_partitions for m in description.members)
    )


async def processed(conn: asyncpg.Connection, workload: Workload) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = $1", workload.consumer
        )
    )


async def consumer_runs(
    settings: Settings, workload: Workload, processes: int, events: int, repeat: int, first: int
) -> dict[str, Any]:
    owners = [uid for uid, _ in await make_users(settings, 200)]
    conn = await asyncpg.connect(settings.database.libpq_url)
    platform = Platform()
    rates: list[float] = []
    runs = []
    try:
        for n in range(processes):
            await platform.start(f"consumers-{n + 1}", *consumers_argv(), settings=settings)
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not await asyncio.to_thread(group_ready, settings, workload, processes):
            platform.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{processes} consumers did not share the partitions")
            await asyncio.sleep(0.5)
        for run in range(repeat):
            messages = envelopes(settings, workload, owners, events, first + run * events)
            expected = await processed(conn, workload) + events
            load = load_average()
            window = CpuWindow({**platform.pids, "runner": os.getpid()})
            started = await asyncio.to_thread(
                publish_at_once, settings.kafka.bootstrap_servers, messages, window.start
            )
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while (done := await processed(conn, workload)) < expected:
                platform.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {done} of {expected} events processed")
                # Not faster: the count reads the consumer's whole processed_events (25-70
                # ms at 90k rows), Postgres work the consumer under test would compete
                # with. The rate does not depend on it: it ends at max(processed_at).
                await asyncio.sleep(0.5)
            cpu = window.stop()
            last = float(
                await conn.fetchval(
                    "SELECT extract(epoch FROM max(processed_at)) FROM processed_events"
                    " WHERE consumer = $1",
                    workload.consumer,
                )
            )
            rates.append(events / (last - started))
            runs.append(
                {
                    "events_per_s": round(rates[-1]),
                    "load_average_before": load,
                    **cpu,
                    "cpu_us_per_event": window.per_event_us(cpu, events),
                }
            )
            progress(f"  {processes} consumer process(es), run {run + 1}: {rates[-1]:,.0f}/s")
        profile = None
        if processes == 1:
            after = first + repeat * events
            profile = await profile_consumer(settings, workload, platform, conn, owners, after)
        peaks = platform.peak_rss_mb()
    finally:
        await conn.close()
        await platform.stop()
    result = {"events_per_s": median_spread(rates), "runs": runs, "peak_rss_mb": peaks}
    return result if profile is None else {**result, "profile_consumer": profile}


async def profile_consumer(
    settings: Settings,
    workload: Workload,
    platform: Platform,
    conn: asyncpg.Connection,
    owners: list[int],
    first: int,
) -> dict[str, Any]:
    """A separate batch (not in the rates) with py-spy sampling the busy consumer."""
    progress("profiling the consumer (py-spy, while it works through a batch)")
    messages = envelopes(settings, workload, owners, PROFILE_EVENTS, first)
    expected = await processed(conn, workload) + PROFILE_EVENTS
    await asyncio.to_thread(publish, settings.kafka.bootstrap_servers, messages)
    pid = next(iter(platform.pids.values()))
    profile = await profile_process(pid, "consumer", markers=CONSUMER_MARKERS)
    while await processed(conn, workload) < expected:
        platform.check_alive()
        await asyncio.sleep(0.2)
    return profile


async def commit_latency_ms(settings: Settings, transactions: int = 300) -> dict[str, float]:
    """One-row transactions on one connection: with the commit's WAL flush (what every
    consumer record and API request pays) and without it, for comparison only."""
    conn = await asyncpg.connect(settings.database.libpq_url)
    result = {}
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (n int)")
        for mode in ("on", "off"):
            await conn.execute(f"SET synchronous_commit = {mode}")
            started = time.perf_counter()
            for n in range(transactions):
                async with conn.transaction():
                    await conn.execute("INSERT INTO bench_commit_probe VALUES ($1)", n)
            result[f"synchronous_commit_{mode}"] = round(
                1000 * (time.perf_counter() - started) / transactions, 3
            )
        await conn.execute("DROP TABLE bench_commit_probe")
    finally:
        await conn.close()
    return result


def consumer_scaling(events: int, repeat: int, workload: str = "welcome") -> dict[str, Any]:
    work = WORKLOADS[workload]
    settings = bench_settings("consumers")
    rows: dict[str, Any] = {}
    try:
        for index, processes in enumerate((1, 2)):
            progress(
                f"consumer scaling ({workload}): {processes} process(es),"
                f" {events:,} events x {repeat}"
            )
            first = 1 + index * (events * repeat + PROFILE_EVENTS)
            rows[f"{processes}proc"] = asyncio.run(
                consumer_runs(settings, work, processes, events, repeat, first)
            )
        commit = asyncio.run(commit_latency_ms(settings))
    finally:
        drop_run(settings)
    one, two = rows["1proc"]["events_per_s"]["median"], rows["2proc"]["events_per_s"]["median"]
    return {
        **rows,
        "workload": workload,
        "consumer": work.consumer,
        "event_type": work.event_type,
        "speedup_2_over_1": round(two / one, 2),
        "postgres_commit_ms": commit,
    }


def consumers_main(events: int, repeat: int, workload: str) -> dict[str, Any]:
    result = consumer_scaling(events, repeat, workload)
    write_result(f"consumers_{workload}", result)
    return result


def main(events: int, consumer_events: int, repeat: int) -> dict[str, Any]:
    summary = {
        "relay": relay_scaling(events, repeat),
        "consumers": consumer_scaling(consumer_events, repeat),
        "relay_events": events,
        "consumer_events": consumer_events,
        "consumer_topic_partitions": Settings().kafka.topics.partitions,
    }
    write_result("scaling", summary)
    return summary
