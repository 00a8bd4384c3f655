"""Servers of the failover tests' own, which they may kill -9 without disturbing
anyone: a 3-node Kafka cluster (devenv/local_kafka.py, the code `connectin services up
--kafka-brokers 3` runs) and a Postgres cluster (initdb from the installed server into
a temporary directory), each on free ports, each reaped by its fixture's finalizer."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from devenv.common import wait_until
from devenv.local_kafka import KafkaCluster
from tests.support.ports import free_ports

PG_BIN = Path("/usr/lib/postgresql")


def log_to(path: Path) -> Callable[[str], None]:
    def log(message: str) -> None:
        with path.open("a") as out:
            out.write(message + "\n")

    return log


def start_kafka_cluster(brokers: int = 3) -> KafkaCluster:
    home = Path(tempfile.mkdtemp(prefix="connectin-kafka-"))
    cluster = KafkaCluster(home, "127.0.0.1", free_ports(2 * brokers), brokers)
    cluster.start(log_to(home / "cli.log"), timeout=180)
    return cluster


def stop_kafka_cluster(cluster: KafkaCluster) -> None:
    cluster.stop(log_to(cluster.home / "cli.log"), hard=True)
    shutil.rmtree(cluster.home, ignore_errors=True)


def restart_node(cluster: KafkaCluster, node_id: int, timeout_s: float = 120) -> None:
    """Start a node that was killed and wait until the cluster lists every node again."""
    node = cluster.node(node_id)
    proc = node.launch(log_to(cluster.home / "cli.log"))
    cluster.wait_ready({node_id: proc}, timeout_s)


def _pg_version_dir() -> Path:
    versions = [p for p in PG_BIN.iterdir() if p.name.isdigit() and (p / "bin/postgres").exists()]
    if not versions:
        raise RuntimeError(f"no PostgreSQL server under {PG_BIN}")
    return max(versions, key=lambda p: int(p.name)) / "bin"


@dataclass
class OwnPostgres:
    """A private Postgres cluster. Run as the `postgres` OS user when we are root (the
    server refuses root); `kill()` SIGKILLs the postmaster itself, like a power cut."""

    data: Path
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://connectin:connectin@127.0.0.1:{self.port}/connectin?sslmode=disable"

    @staticmethod
    def _user() -> tuple[int | None, int | None, list[int] | None]:
        """(uid, gid, supplementary groups) to run the server as: `postgres` when we
        are root, else ourselves."""
        if os.geteuid() != 0:
            return None, None, None
        entry = pwd.getpwnam("postgres")
        return entry.pw_uid, entry.pw_gid, []

    def init(self) -> None:
        uid, gid, groups = self._user()
        if uid is not None and gid is not None:
            os.chown(self.data.parent, uid, gid)
        subprocess.run(
            [
                str(_pg_version_dir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "connectin",
                "--auth=trust",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )

    def start(self, timeout_s: float = 120) -> None:
        uid, gid, groups = self._user()
        out = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [
                str(_pg_version_dir() / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.data}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        out.close()
        popen = self.popen

        def exited() -> str:
            code = popen.poll()
            return "" if code is None else f"postgres exited with code {code}"

        wait_until(self.answers, timeout=timeout_s, what="own postgres", gave_up=exited)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url.replace("/connectin?", "/postgres?"), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def create_database(self) -> None:
        with psycopg.connect(
            self.url.replace("/connectin?", "/postgres?"), autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE connectin")

    def kill(self) -> None:
        """Power loss: the postmaster and every backend SIGKILLed at one instant, so no
        shutdown checkpoint is written and no backend finishes the transaction it was in
        or sends the answer of a commit it just made durable. The next start recovers
        from WAL."""
        if self.popen is None:
            return
        for pid in {self.popen.pid, *_backends_of(self.data)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(30)
        self.popen = None
        # The dead backends still hold the shared memory the next postmaster needs
        # until the kernel has reaped them.
        deadline = time.monotonic() + 60
        while _backends_of(self.data) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self.kill()


def _backends_of(data: Path) -> list[int]:
    """Processes still running out of this data directory (orphaned backends)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(data):
            pids.append(int(proc.name))
    return pids


def start_own_postgres() -> OwnPostgres:
    root = Path(tempfile.mkdtemp(prefix="connectin-pg-"))
    pg = OwnPostgres(root / "data", free_ports(1), root / "postgres.log")
    pg.init()
    pg.start()
    pg.create_database()
    return pg


def stop_own_postgres(pg: OwnPostgres) -> None:
    pg.stop()
    shutil.rmtree(pg.data.parent, ignore_errors=True)


async def event_ids_by(engine: AsyncEngine, table: str, column: str) -> dict[str, set[str]]:
    """The event ids of `table` grouped by `column`."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT {column}, event_id::text FROM {table}"))
        out: dict[str, set[str]] = {}
        for group, event_id in rows:
            out.setdefault(group, set()).add(event_id)
        return out


async def consumed_everything(engine: AsyncEngine, s: Settings, *, exactly: bool = False) -> bool:
    """Each consumer group applied every outbox event of its topic (`exactly`: and
    nothing else). processed_events has one row per (consumer, event): no doubles."""
    want = await event_ids_by(engine, "outbox", "topic")
    done = await event_ids_by(engine, "processed_events", "consumer")
    topics = s.kafka.topics
    by_consumer = {
        "users": topics.user,
        "projects": topics.project,
        "messages": topics.message,
        "payments": topics.payment,
    }
    for consumer, topic in by_consumer.items():
        got, expected = done.get(consumer, set()), want.get(topic, set())
        complete = got == expected if exactly else got >= expected
        if not complete:
            return False
    return True


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """A 3-node Kafka cluster of the failover tests' own (free ports, temporary
    directory): they kill its nodes. Stopped and deleted at the end, whatever happens."""
    cluster = start_kafka_cluster(3)
    try:
        yield cluster
    finally:
        stop_kafka_cluster(cluster)


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[OwnPostgres]:
    """A Postgres cluster of the failover tests' own, which they SIGKILL."""
    pg = start_own_postgres()
    try:
        yield pg
    finally:
        stop_own_postgres(pg)
