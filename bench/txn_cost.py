"""What one Kafka transaction costs by the number of partitions it touches, with no
Postgres and no relay: a raw transactional producer (the relay's configuration) sends
transactions of the same events spread over 1, 2, ... partitions of the event topics,
and the commit's wall time and the broker's CPU are taken per transaction.

Each partition a transaction touches costs the broker an entry in the transaction
log, a record batch, and a commit marker written to that partition; the relay's
transactions touch every partition its batch's keys hash to, plus the checkpoint.
This is the floor under the relay's commit → visible latency and under the broker's
share of the CPU, whatever the relay does. Partition counts run interleaved, repeat
after repeat, so drift in the machine's load hits them alike:

    python -m bench txn-cost --transactions 300 --events 25 --partitions 1,6,24
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from bench.common import bench_settings, drop_run, percentiles, progress, write_result
from bench.procs import cpu_seconds, load_average, service_pids
from core.kafka import transactional_producer_config
from core.settings import Settings
from core.topics import TopicSpec, ensure_topics

VALUE = b"x" * 300


@dataclass
class Sample:
    commit_ms: list[float]
    broker_ms_per_txn: float | None
    txn_per_s: float


def _producer(settings: Settings) -> Producer:
    kafka = settings.kafka
    producer = Producer(
        {
            **transactional_producer_config(kafka, f"{kafka.transactional_id_prefix}-txn-cost"),
            "compression.type": settings.relay.compression,
            "linger.ms": settings.relay.linger_ms,
        }
    )
    producer.init_transactions(30)
    return producer


def _send(
    producer: Producer,
    places: list[tuple[str, int]],
    transactions: int,
    events: int,
    brokers: list[int],
) -> Sample:
    """`transactions` transactions of `events` events spread round robin over `places`
    (topic, partition); the commit's wall time of each, the broker's CPU per one."""
    commits: list[float] = []
    broker_before = sum(cpu_seconds(pid) for pid in brokers)
    started = time.perf_counter()
    for _ in range(transactions):
        producer.begin_transaction()
        for n in range(events):
            topic, partition = places[n % len(places)]
            producer.produce(topic, VALUE, b"k", partition=partition)
        before_commit = time.perf_counter()
        producer.commit_transaction(30)
        commits.append((time.perf_counter() - before_commit) * 1000)
    elapsed = time.perf_counter() - started
    broker_s = sum(cpu_seconds(pid) for pid in brokers) - broker_before
    return Sample(
        commit_ms=commits,
        # Empty when the broker is not a process of this machine (Docker, remote).
        broker_ms_per_txn=1000 * broker_s / transactions if brokers else None,
        txn_per_s=transactions / elapsed,
    )


def main(transactions: int, events: int, partitions: list[int], repeat: int) -> dict[str, Any]:
    settings = bench_settings("txncost")
    topics = settings.kafka.topics
    per_topic = -(-max(partitions) // len(topics.event_topics))
    # Topic after topic in each partition's turn, as a batch's keys land: 4 partitions
    # are one of each topic.
    places = [(topic, p) for p in range(per_topic) for topic in topics.event_topics]
    brokers = service_pids()["kafka_broker"]
    samples: dict[int, list[Sample]] = {count: [] for count in partitions}
    load = load_average()
    try:
        specs = [TopicSpec(topic, per_topic) for topic in topics.event_topics]
        ensure_topics(settings.kafka.bootstrap_servers, specs)
        producer = _producer(settings)
        # The first transactions to each partition pay its leader lookups.
        _send(producer, places, 50, max(events, len(places)), brokers)
        for run in range(repeat):
            shift = run % len(partitions)
            for count in partitions[shift:] + partitions[:shift]:
                sample = _send(producer, places[:count], transactions, events, brokers)
                samples[count].append(sample)
                progress(
                    f"  {count} partition(s): commit p50"
                    f" {statistics.median(sample.commit_ms):.2f} ms, broker"
                    f" {sample.broker_ms_per_txn or 0:.2f} ms CPU per transaction,"
                    f" {sample.txn_per_s:.0f} transactions/s"
                )
        producer.flush(10)
    finally:
        drop_run(settings)
    by_partitions: dict[str, Any] = {}
    for count, runs in samples.items():
        broker = [s.broker_ms_per_txn for s in runs if s.broker_ms_per_txn is not None]
        by_partitions[str(count)] = {
            "commit_ms": percentiles([ms for s in runs for ms in s.commit_ms]),
            "broker_cpu_ms_per_transaction": round(statistics.median(broker), 2)
            if broker
            else None,
            "transactions_per_s": round(statistics.median(s.txn_per_s for s in runs), 1),
        }
    fewest = by_partitions[str(min(partitions))]
    result = {
        "transactions": transactions,
        "events_per_transaction": events,
        "repeat": repeat,
        "load_average_before": load,
        "by_partitions": by_partitions,
        # Against the fewest partitions in this same run.
        "commit_p50_ratio_to_fewest": {
            k: round(v["commit_ms"]["p50"] / fewest["commit_ms"]["p50"], 2)
            for k, v in by_partitions.items()
        },
    }
    write_result("txn_cost", result)
    return result
