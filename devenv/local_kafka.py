"""Apache Kafka (KRaft, combined broker+controller nodes) from Maven Central jars.

Used when neither a configured broker nor a Docker engine answers. Jars come from
`services/kafka/pom.xml`; config, data, logs and the pid file live under
`.cache/kafka/` so a restart keeps topics, offsets and transaction state (the
crash tests stop and start the broker mid-stream and expect exactly that).

One node by default. `KafkaCluster(home, host, port, brokers=3)` runs a replicated
cluster from the same jars: node i (1-based) listens on port + 2(i-1) and its
controller on the port after it, all nodes are voters of a static controller quorum,
and internal topics (offsets, transaction state) and new topics are replicated 3 times
with min.insync.replicas=2, so one node can die without losing a committed record or
stopping writes. The failover tests run one in a temporary directory and kill -9 its
nodes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.kafka import admin_config
from core.settings import Settings
from devenv.common import (
    CACHE_DIR,
    REPO_ROOT,
    Log,
    ServiceError,
    is_loopback,
    kafka_address,
    run,
    tcp_open,
    wait_until,
)

KAFKA_DIR = CACHE_DIR / "kafka"
LIBS_DIR = KAFKA_DIR / "libs"
POM = REPO_ROOT / "services" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "services" / "kafka" / "log4j2.properties"

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# A node killed a moment ago looks gone once its main thread is a zombie, while its
# other threads can still hold the listening socket (the kernel still completes
# handshakes on it) for a moment.
PORT_RELEASE_S = 10.0
START_BANNER = "==== connectin: starting broker"
# Replication of internal and new topics on a cluster of at least this many nodes.
REPLICATION = 3

# Popen objects of brokers this Python process started: polling them reaps the
# child, otherwise a killed broker lingers as a zombie and still "exists" by pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class KafkaNode:
    cluster: KafkaCluster
    node_id: int

    @property
    def port(self) -> int:
        return self.cluster.port + 2 * (self.node_id - 1)

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def address(self) -> str:
        return f"{self.cluster.host}:{self.port}"

    @property
    def home(self) -> Path:
        # The single node keeps the layout `.cache/kafka/` always had.
        if self.cluster.brokers == 1:
            return self.cluster.home
        return self.cluster.home / f"node-{self.node_id}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def properties(self) -> str:
        c = self.cluster
        host = c.host
        controller = f"{host}:{self.controller_port}"
        replicas = min(REPLICATION, c.brokers)
        min_isr = max(1, replicas - 1)
        if c.brokers == 1:
            # --standalone: a one-voter *dynamic* quorum, which requires
            # controller.quorum.bootstrap.servers and forbids controller.quorum.voters.
            quorum = f"controller.quorum.bootstrap.servers={controller}"
        else:
            quorum = "controller.quorum.voters=" + ",".join(
                f"{n.node_id}@{host}:{n.controller_port}" for n in c.nodes()
            )
        return f"""\
# Written by devenv/local_kafka.py on every start; edit that file, not this one.
process.roles=broker,controller
node.id={self.node_id}
{quorum}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{self.port},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{host}:{self.port},CONTROLLER://{controller}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.data_dir}
# After a SIGKILL the restarted node cannot re-register until its old broker session
# expires (DUPLICATE_BROKER_REGISTRATION), 9 s by default: shorter for crash tests.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
num.recovery.threads.per.data.dir=2
"""

    def answers(self, timeout: float = 2.0) -> bool:
        """This node itself serves metadata (not only the cluster on its behalf)."""
        if not tcp_open(self.cluster.host, self.port, timeout=timeout):
            return False
        admin = AdminClient(admin_config(self.address, quiet=True))
        try:
            return self.node_id in admin.list_topics(timeout=timeout).brokers
        except KafkaException:
            return False

    def running_pid(self) -> int | None:
        """Pid of this node if it is running (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except FileNotFoundError:
            return None
        except ValueError:
            self.pid_file.unlink(missing_ok=True)
            return None
        if _is_broker(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the node's logs, for errors; kafka.log only since the last start."""
        parts = []
        for path in (self.log_file, self.home / "server.log"):
            if path.exists():
                text = path.read_text(errors="replace")
                if path == self.log_file and START_BANNER in text:
                    text = text[text.rindex(START_BANNER) :]
                tail = text.splitlines()[-lines:]
                parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no log in {self.home})"

    def _format(self, log: Log) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        log(f"kafka: formatting KRaft storage of node {self.node_id}")
        standalone = ["--standalone"] if self.cluster.brokers == 1 else []
        run(
            _java_cmd(
                self.home,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster.cluster_id(),
                "--config",
                str(self.config_file),
                *standalone,
            ),
            timeout=120,
        )

    def launch(self, log: Log) -> subprocess.Popen[bytes]:
        """Start this node (formatting its storage the first time) without waiting."""
        wait_port_released(self.cluster.host, self.port, PORT_RELEASE_S)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.properties())
        self._format(log)
        log(
            f"kafka: starting node {self.node_id} on {self.address} "
            f"(controller :{self.controller_port}), log {self.log_file}"
        )
        with self.log_file.open("ab") as out:
            out.write(f"{START_BANNER} at {time.ctime()} ====\n".encode())
            out.flush()
            proc = subprocess.Popen(
                _java_cmd(self.home, "kafka.Kafka", str(self.config_file)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                # Its own session: Ctrl-C in the terminal that ran `up` must not kill it.
                start_new_session=True,
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def stop(self, log: Log, *, hard: bool = False, timeout: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM (controlled shutdown) or, with `hard`, SIGKILL like a crash. False
        when the node was not running."""
        pid = self.send_stop(log, hard=hard)
        if pid is not None:
            self.wait_stopped(pid, log, timeout)
        return pid is not None

    def send_stop(self, log: Log, *, hard: bool) -> int | None:
        pid = self.running_pid()
        if pid is None:
            return None
        log(f"kafka: stopping node {self.node_id} pid {pid} ({'SIGKILL' if hard else 'SIGTERM'})")
        # ProcessLookupError: it died between the check and the signal, which is the goal.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        return pid

    def wait_stopped(self, pid: int, log: Log, timeout: float = STOP_TIMEOUT_S) -> None:
        if not _wait_gone(pid, timeout):
            log(f"kafka: node pid {pid} still running after {timeout:.0f} s, sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10.0):
                raise ServiceError(f"kafka node pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class KafkaCluster:
    home: Path
    host: str
    port: int
    brokers: int = 1

    def nodes(self) -> list[KafkaNode]:
        return [KafkaNode(self, i) for i in range(1, self.brokers + 1)]

    def node(self, node_id: int) -> KafkaNode:
        return KafkaNode(self, node_id)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes())

    def cluster_id(self) -> str:
        path = self.home / "cluster-id"
        if path.exists():
            return path.read_text().strip()
        # Kafka's Uuid text form: unpadded URL-safe base64 of 16 random bytes. Like
        # Uuid.randomUuid() we avoid a leading '-', which argument parsers take for a flag.
        while True:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cluster_id.startswith("-"):
                break
        self.home.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id + "\n")
        return cluster_id

    def answering_brokers(self, timeout: float = 5.0) -> int:
        """How many brokers the cluster's metadata lists (0 if nobody answers)."""
        if not any(tcp_open(self.host, n.port, timeout=min(timeout, 2.0)) for n in self.nodes()):
            return 0
        admin = AdminClient(admin_config(self.bootstrap_servers, quiet=True))
        try:
            return len(admin.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return 0

    def wait_ready(self, procs: dict[int, subprocess.Popen[bytes]], timeout: float) -> None:
        """Wait until each started node answers on its own port and the cluster lists
        every node (a killed node stays listed until its broker session expires)."""

        def exited() -> str:
            dead = {i: p.poll() for i, p in procs.items() if p.poll() is not None}
            return ", ".join(f"node {i} exited with code {c}" for i, c in dead.items())

        def ready() -> bool:
            nodes = [self.node(i) for i in procs]
            return all(n.answers() for n in nodes) and self.answering_brokers(2.0) >= self.brokers

        try:
            wait_until(
                ready,
                timeout=timeout,
                what="kafka",
                gave_up=exited,
            )
        except ServiceError as exc:
            tails = "\n".join(self.node(i).log_tail() for i in procs)
            raise ServiceError(f"{exc}\n{tails}") from None

    def start(self, log: Log, *, timeout: float = START_TIMEOUT_S) -> bool:
        """Start every node not running and wait until all answer; False if all ran."""
        ensure_libs(log)
        procs = {n.node_id: n.launch(log) for n in self.nodes() if n.running_pid() is None}
        if not procs:
            return False
        try:
            self.wait_ready(procs, timeout)
        except ServiceError:
            self.stop(log, hard=True)
            raise
        return True

    def stop(self, log: Log, *, hard: bool = False) -> bool:
        """Stop every node; False if none was running. All are signalled first: a node
        stopped alone after the others has no controller quorum and its controlled
        shutdown would hang until the timeout."""
        pids = {n.node_id: n.send_stop(log, hard=hard) for n in self.nodes()}
        for node_id, pid in pids.items():
            if pid is not None:
                self.node(node_id).wait_stopped(pid, log)
        return any(pid is not None for pid in pids.values())


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError("java is not installed (Kafka needs Java 17+)")
    return java


def _class_path() -> str:
    return os.pathsep.join(str(j) for j in sorted(LIBS_DIR.glob("*.jar")))


def _java_cmd(logs_dir: Path, main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        "-Xmx512m",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        _class_path(),
        main_class,
        *args,
    ]


def ensure_libs(log: Log) -> None:
    if not any(LIBS_DIR.glob("kafka_*.jar")):
        if shutil.which("mvn") is None:
            raise ServiceError("mvn is not installed; it resolves the Kafka jars")
        log(f"kafka: resolving broker jars from Maven Central into {LIBS_DIR}")
        run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={LIBS_DIR}",
            ],
            timeout=1200,
        )


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        del _children[pid]


def _is_broker(pid: int) -> bool:
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    # The cmdline check guards against a recycled pid now used by another program.
    return state not in {"Z", "X"} and b"\0kafka.Kafka\0" in cmdline


def wait_port_released(host: str, port: int, timeout: float) -> None:
    """ServiceError if something still answers on the port after `timeout`."""
    wait_until(
        lambda: not tcp_open(host, port),
        timeout=timeout,
        interval=0.2,
        what=f"{host}:{port} is taken by a process that does not answer as our Kafka node",
    )


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_broker(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


# ---- the cluster `connectin services up` runs -------------------------------------------


def local_cluster(settings: Settings) -> KafkaCluster:
    """The cluster under `.cache/kafka/` for the configured address and size."""
    host, port = kafka_address(settings)
    return KafkaCluster(KAFKA_DIR, host, port, settings.kafka.local_brokers)


def server_properties(settings: Settings) -> str:
    """The config of the first node of the local cluster."""
    return local_cluster(settings).node(1).properties()


def running_pid(settings: Settings | None = None) -> int | None:
    """Pid of a node of ours that is still running, if any."""
    cluster = local_cluster(settings or Settings.from_env())
    for node in cluster.nodes():
        pid = node.running_pid()
        if pid is not None:
            return pid
    return None


def start(settings: Settings, log: Log) -> bool:
    """Start the local cluster and wait until every node answers; False if it was
    already running."""
    cluster = local_cluster(settings)
    for node in cluster.nodes():
        pid = node.running_pid()
        if pid is not None and node.config_file.read_text() != node.properties():
            raise ServiceError(
                f"our local Kafka node (pid {pid}) runs with other settings "
                f"({node.config_file}) than KAFKA_BOOTSTRAP_SERVERS="
                f"{settings.kafka.bootstrap_servers}, KAFKA_LOCAL_BROKERS="
                f"{settings.kafka.local_brokers}; run `connectin services down` first"
            )
    if not is_loopback(cluster.host):
        raise ServiceError(
            f"KAFKA_BOOTSTRAP_SERVERS points at {cluster.host}, which does not answer; a "
            "local broker can only be started for 127.0.0.1/localhost"
        )
    return cluster.start(log)


def stop(log: Log, *, hard: bool = False, settings: Settings | None = None) -> bool:
    """Stop our nodes: SIGTERM (controlled shutdown) or, with `hard`, SIGKILL like a
    crash. False when none of ours was running."""
    return local_cluster(settings or Settings.from_env()).stop(log, hard=hard)
