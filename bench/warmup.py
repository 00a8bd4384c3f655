"""Warm the Kafka broker's JIT before measuring. A broker started minutes ago spends
whole seconds of CPU compiling (its C2 compiler threads: ~25 s of CPU in the first
minute of transactional traffic on the 2-core machine of README's figures), and that
CPU comes out of whatever the first benchmark measures. So every benchmark command
first drives Kafka transactions until the broker's compiler threads fall quiet."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.common import progress
from bench.procs import CLOCK_TICKS, service_pids
from core.kafka import admin_config, transactional_producer_config
from core.settings import Settings

WINDOW_S = 5.0
# Compiler threads below this share of one core over a window: warm.
QUIET_CORES = 0.05
MAX_S = 120.0
PARTITIONS = 6


def compiler_cpu_s(pid: int) -> float:
    """CPU seconds the JVM's JIT compiler threads used so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def warm_broker(settings: Settings) -> dict[str, object]:
    """Transactions of a few events over several partitions (what the relay sends)
    until the compilers are quiet for a window; what it took, for the result files."""
    brokers = service_pids()["kafka_broker"]
    if not brokers:
        progress("broker warm-up skipped: the broker is not a process of this machine")
        return {"skipped": "broker not local"}
    kafka = settings.kafka.namespaced(f"bench-warmup-{uuid.uuid4().hex[:6]}")
    topic = kafka.topics.user
    admin = AdminClient(admin_config(kafka.bootstrap_servers))
    admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result()
    producer = Producer(transactional_producer_config(kafka, f"{topic}-warmup"))
    started = time.monotonic()
    try:
        producer.init_transactions(30)
        window_start, compiled0 = time.monotonic(), sum(map(compiler_cpu_s, brokers))
        transactions = 0
        while True:
            producer.begin_transaction()
            for n in range(PARTITIONS):
                producer.produce(topic, b"x" * 300, str(n).encode())
            producer.commit_transaction(30)
            transactions += 1
            time.sleep(0.005)
            now = time.monotonic()
            if now - window_start < WINDOW_S:
                continue
            compiled = sum(map(compiler_cpu_s, brokers))
            cores = (compiled - compiled0) / (now - window_start)
            if cores < QUIET_CORES or now - started > MAX_S:
                break
            window_start, compiled0 = now, compiled
    finally:
        admin.delete_topics([topic], operation_timeout=30)
    took = round(time.monotonic() - started, 1)
    quiet = cores < QUIET_CORES
    progress(
        f"broker warm-up: {transactions} transactions in {took} s, JIT compilers at "
        f"{cores:.2f} core{'' if quiet else ' (still busy: stopped at the time limit)'}"
    )
    return {"seconds": took, "transactions": transactions, "compiler_cores_last": round(cores, 3)}
