"""Warm the Kafka broker's JIT before measuring. A broker started minutes ago spends
whole seconds of CPU compiling (its C2 compiler thread: ~23 s of CPU in the first
minute of transactional traffic on the 2-core machine of README's figures), and that
CPU comes out of whatever the first benchmark measures. So every benchmark command
first drives Kafka transactions until the broker's compiler threads fall quiet."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.common import progress
from bench.procs import cpu_seconds, service_pids
from core.kafka import admin_config, transactional_producer_config
from core.settings import Settings

WINDOW_S = 5.0
# Compiler threads below this share of one core over a window: warm.
QUIET_CORES = 0.05
MAX_S = 120.0
PARTITIONS = 6
COMPILER_THREADS = ("C1 Compiler", "C2 Compiler")


def compiler_cpu(pid: int) -> dict[int, float]:
    """CPU seconds each of the JVM's JIT compiler threads used so far, by thread id.
    HotSpot starts and stops compiler threads on demand, so windows are compared per
    thread: one that ended meanwhile must not make the window look quiet."""
    used: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return used  # the broker ended or restarted: nothing to read
    for task in tasks:
        try:
            if not (task / "comm").read_text().startswith(COMPILER_THREADS):
                continue
        except OSError:
            continue  # the thread ended meanwhile
        # 0 for a thread that ended meanwhile: left out, or the window would go negative.
        if cpu := cpu_seconds(pid, int(task.name)):
            used[int(task.name)] = cpu
    return used


def _compiled_between(before: dict[int, float], after: dict[int, float]) -> float:
    """Compiler CPU of the window: threads seen at both ends, and the whole of new ones."""
    return sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items())


def _local(bootstrap_servers: str) -> bool:
    hosts = {address.rsplit(":", 1)[0].strip("[]") for address in bootstrap_servers.split(",")}
    return hosts <= {"127.0.0.1", "localhost", "::1"}


def warm_broker(settings: Settings) -> dict[str, object]:
    """Transactions of a few events over several partitions (what the relay sends)
    until the compilers are quiet for a window; what it took, for the result files."""
    brokers = service_pids()["kafka_broker"]
    if len(brokers) != 1 or not _local(settings.kafka.bootstrap_servers):
        # Not one broker process of this machine serving these bootstrap servers: there
        # is no telling whose compilers to watch.
        progress("broker warm-up skipped: the broker is not one process of this machine")
        return {"skipped": "broker not one local process"}
    broker = brokers[0]
    kafka = settings.kafka.namespaced(f"bench-warmup-{uuid.uuid4().hex[:6]}")
    topic = kafka.topics.user
    admin = AdminClient(admin_config(kafka.bootstrap_servers))
    started = time.monotonic()
    transactions = 0
    cores = 0.0
    producer: Producer | None = None
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result()
        producer = Producer(transactional_producer_config(kafka, f"{topic}-warmup"))
        producer.init_transactions(30)
        window_start, compiled0 = time.monotonic(), compiler_cpu(broker)
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
            compiled = compiler_cpu(broker)
            cores = _compiled_between(compiled0, compiled) / (now - window_start)
            if cores < QUIET_CORES or now - started > MAX_S:
                break
            window_start, compiled0 = now, compiled
    finally:
        if producer is not None:
            producer.purge()
            producer.flush(0)
        try:
            admin.delete_topics([topic], operation_timeout=30)[topic].result()
        except KafkaException as exc:
            progress(f"broker warm-up: topic {topic} left behind ({exc})")
    took = round(time.monotonic() - started, 1)
    quiet = cores < QUIET_CORES
    progress(
        f"broker warm-up: {transactions} transactions in {took} s, JIT compilers at "
        f"{cores:.2f} core{'' if quiet else ' (still busy: stopped at the time limit)'}"
    )
    return {"seconds": took, "transactions": transactions, "compiler_cores_last": round(cores, 3)}
