"""A single-node Apache Kafka (KRaft, combined broker+controller) from Maven Central jars.

Used when neither a configured broker nor a Docker engine answers. Jars come from
`services/kafka/pom.xml`; config, data, logs and the pid file live under
`.cache/kafka/` so a restart keeps topics, offsets and transaction state (the
crash tests stop and start the broker mid-stream and expect exactly that).
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
from pathlib import Path

from cli.service_common import (
    CACHE_DIR,
    REPO_ROOT,
    Log,
    ServiceError,
    is_loopback,
    kafka_address,
    kafka_answers,
    run,
    tcp_open,
    wait_until,
)
from core.settings import Settings

KAFKA_DIR = CACHE_DIR / "kafka"
LIBS_DIR = KAFKA_DIR / "libs"
DATA_DIR = KAFKA_DIR / "data"
CONFIG_FILE = KAFKA_DIR / "server.properties"
PID_FILE = KAFKA_DIR / "kafka.pid"
LOG_FILE = KAFKA_DIR / "kafka.log"
SERVER_LOG = KAFKA_DIR / "server.log"
CLUSTER_ID_FILE = KAFKA_DIR / "cluster-id"
POM = REPO_ROOT / "services" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "services" / "kafka" / "log4j2.properties"

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

# Popen objects of brokers this Python process started: polling them reaps the
# child, otherwise a killed broker lingers as a zombie and still "exists" by pid.
_children: dict[int, subprocess.Popen[bytes]] = {}


def server_properties(settings: Settings) -> str:
    host, port = kafka_address(settings)
    controller = f"{host}:{port + 1}"
    return f"""\
# Written by cli/local_kafka.py on every start; edit that file, not this one.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={controller}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{controller}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={DATA_DIR}
# After a SIGKILL the restarted node cannot re-register until its old broker session
# expires (DUPLICATE_BROKER_REGISTRATION), 9 s by default: shorter for crash tests.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
num.recovery.threads.per.data.dir=2
"""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError("java is not installed (Kafka needs Java 17+)")
    return java


def _class_path() -> str:
    return os.pathsep.join(str(j) for j in sorted(LIBS_DIR.glob("*.jar")))


def _java_cmd(main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        "-Xmx512m",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={KAFKA_DIR}",
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


def _cluster_id() -> str:
    if CLUSTER_ID_FILE.exists():
        return CLUSTER_ID_FILE.read_text().strip()
    # Kafka's Uuid text form: unpadded URL-safe base64 of 16 random bytes. Like
    # Uuid.randomUuid() we avoid a leading '-', which argument parsers take for a flag.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            break
    CLUSTER_ID_FILE.write_text(cluster_id + "\n")
    return cluster_id


def ensure_formatted(log: Log) -> None:
    if (DATA_DIR / "meta.properties").exists():
        return
    log("kafka: formatting KRaft storage (standalone controller quorum)")
    # --standalone: a one-voter *dynamic* quorum, which requires
    # controller.quorum.bootstrap.servers and forbids controller.quorum.voters.
    run(
        _java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(CONFIG_FILE),
            "--standalone",
        ),
        timeout=120,
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


def running_pid() -> int | None:
    """Pid of the broker we started, if it is still running (stale pid files are removed)."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        PID_FILE.unlink(missing_ok=True)
        return None
    if _is_broker(pid):
        return pid
    PID_FILE.unlink(missing_ok=True)
    return None


START_BANNER = "==== connectin: starting broker"


def log_tail(lines: int = 30) -> str:
    """The end of the broker's logs, for errors; kafka.log only since the last start."""
    parts = []
    for path in (LOG_FILE, SERVER_LOG):
        if path.exists():
            text = path.read_text(errors="replace")
            if path == LOG_FILE and START_BANNER in text:
                text = text[text.rindex(START_BANNER) :]
            tail = text.splitlines()[-lines:]
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no log in {KAFKA_DIR})"


def start(settings: Settings, log: Log) -> bool:
    """Start the local broker and wait until it answers; False if it was already running."""
    pid = running_pid()
    if pid is not None:
        if CONFIG_FILE.exists() and CONFIG_FILE.read_text() != server_properties(settings):
            raise ServiceError(
                f"our local broker (pid {pid}) runs with other settings ({CONFIG_FILE}) than "
                f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers}; "
                "run `connectin services down` first"
            )
        return False
    host, port = kafka_address(settings)
    if not is_loopback(host):
        raise ServiceError(
            f"KAFKA_BOOTSTRAP_SERVERS points at {host}, which does not answer; a local "
            "broker can only be started for 127.0.0.1/localhost"
        )
    if tcp_open(host, port):
        raise ServiceError(f"{host}:{port} is taken by a process that does not answer as Kafka")
    ensure_libs(log)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    CONFIG_FILE.write_text(server_properties(settings))
    ensure_formatted(log)
    log(f"kafka: starting broker on {host}:{port} (controller :{port + 1}), log {LOG_FILE}")
    with LOG_FILE.open("ab") as out:
        out.write(f"{START_BANNER} at {time.ctime()} ====\n".encode())
        out.flush()
        proc = subprocess.Popen(
            _java_cmd("kafka.Kafka", str(CONFIG_FILE)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=KAFKA_DIR,
            # Its own session: Ctrl-C in the terminal that ran `up` must not kill it.
            start_new_session=True,
        )
    _children[proc.pid] = proc
    PID_FILE.write_text(f"{proc.pid}\n")

    def exited() -> str:
        code = proc.poll()
        return "" if code is None else f"broker exited with code {code}"

    try:
        wait_until(
            lambda: kafka_answers(settings, timeout=2.0),
            timeout=START_TIMEOUT_S,
            what="kafka",
            gave_up=exited,
        )
    except ServiceError as exc:
        stop(log, hard=True)
        raise ServiceError(f"{exc}\n{log_tail()}") from None
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_broker(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def stop(log: Log, *, hard: bool = False, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop our broker: SIGTERM (controlled shutdown) or, with `hard`, SIGKILL like a crash.

    False when no broker of ours was running.
    """
    pid = running_pid()
    if pid is None:
        return False
    log(f"kafka: stopping broker pid {pid} ({'SIGKILL' if hard else 'SIGTERM'})")
    # ProcessLookupError: it died between the check and the signal, which is the goal.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        log(f"kafka: broker pid {pid} still running after {timeout:.0f} s, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, 10.0):
            raise ServiceError(f"kafka broker pid {pid} survived SIGKILL")
    PID_FILE.unlink(missing_ok=True)
    return True
