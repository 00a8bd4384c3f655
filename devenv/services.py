"""Real Postgres and Kafka, with or without Docker (`connectin services up|down|status|env`).

`ensure_up` reuses whatever already answers at the configured addresses, else starts the
compose services when a Docker engine answers, else runs them locally (Debian's
PostgreSQL, Kafka's jars on Java). It records what it started under
`.cache/services/` so `stop` stops only that. The API-write benchmark calls
`stop_kafka`/`start_kafka` to take the broker away mid-run; the failover tests run
servers of their own (tests/support/cluster.py) instead of touching these.
"""

from __future__ import annotations

from dataclasses import replace

from core.settings import Settings
from devenv import docker_services, local_kafka, local_postgres
from devenv.common import (
    Log,
    ServiceError,
    clear_marker,
    kafka_address,
    kafka_answers,
    log_stderr,
    postgres_answers,
    read_marker,
    wait_until,
    write_marker,
)

POSTGRES = "postgres"
KAFKA = "kafka"
DOCKER_WAIT_S = 180.0

__all__ = [
    "KAFKA",
    "POSTGRES",
    "ServiceError",
    "as_started",
    "ensure_up",
    "env_for",
    "origin",
    "start_kafka",
    "status",
    "stop",
    "stop_kafka",
]


def env_for(settings: Settings) -> dict[str, str]:
    """The variables other processes need; the URL in libpq form (Settings accepts it).
    A local cluster of several nodes is listed whole, so clients can bootstrap while
    its first node is down."""
    settings = as_started(settings)
    env = {
        "DATABASE_URL": settings.database.libpq_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
    }
    if settings.kafka.local_brokers > 1:
        env["KAFKA_BOOTSTRAP_SERVERS"] = local_kafka.local_cluster(settings).bootstrap_servers
        env["KAFKA_LOCAL_BROKERS"] = str(settings.kafka.local_brokers)
    return env


def as_started(settings: Settings, *, any_address: bool = False) -> Settings:
    """`settings` with the local cluster `up` started (its marker: address and size),
    so `env`, `status` and `down` see every node without being told again. Unless
    `any_address` (what `down` wants: stop what was started), only a marker for the
    configured address counts: a stale one for other ports must not make `env` list
    addresses nobody serves."""
    marker = read_marker(KAFKA) or {}
    address = marker.get("address")
    if marker.get("mode") != "local" or address is None:
        return settings
    host, port = kafka_address(settings)
    if not any_address and address != f"{host}:{port}":
        return settings
    kafka = replace(
        settings.kafka, bootstrap_servers=address, local_brokers=int(marker.get("brokers", "1"))
    )
    return replace(settings, kafka=kafka)


def status(settings: Settings) -> dict[str, bool]:
    return {POSTGRES: postgres_answers(settings), KAFKA: kafka_answers(settings)}


def _mode(name: str) -> str | None:
    marker = read_marker(name)
    return None if marker is None else marker.get("mode")


def origin(name: str, settings: Settings) -> str | None:
    """How `ensure_up` started the service ("docker", "local"), None if it did not."""
    local = name == KAFKA and local_kafka.running_pid(settings) is not None
    return _mode(name) or ("local" if local else None)


def _wait(name: str, settings: Settings, timeout: float) -> None:
    answers = postgres_answers if name == POSTGRES else kafka_answers
    wait_until(lambda: answers(settings), timeout=timeout, what=name)


def _start_local_postgres(settings: Settings, log: Log) -> None:
    started = local_postgres.ensure_running(settings, log)
    if started is not None:
        # Which cluster, so `down` stops that one even if DATABASE_URL changed since.
        write_marker(
            POSTGRES, {"mode": "local", "version": started.version, "cluster": started.name}
        )


def _start_local_kafka(settings: Settings, log: Log) -> None:
    if local_kafka.start(settings, log):
        host, port = kafka_address(settings)
        write_marker(
            KAFKA,
            {
                "mode": "local",
                "brokers": str(settings.kafka.local_brokers),
                "address": f"{host}:{port}",
            },
        )
    else:
        # Our broker is running but did not answer the probe yet (still starting).
        _wait(KAFKA, settings, local_kafka.START_TIMEOUT_S)


def ensure_up(settings: Settings, log: Log = log_stderr) -> dict[str, str]:
    """Make the configured Postgres and Kafka answer; returns `env_for(settings)`."""
    answering = status(settings)
    for name, ok in answering.items():
        if ok:
            log(f"{name}: already answering, nothing to do")
    missing = [name for name, ok in answering.items() if not ok]
    # compose.yaml has one broker: a cluster of several always runs from the jars.
    local_only = {KAFKA} if settings.kafka.local_brokers > 1 else set()
    docker = [name for name in missing if name not in local_only]
    if docker and docker_services.engine_answers():
        docker_services.up(docker, log)
        for name in docker:
            write_marker(name, {"mode": "docker"})
        for name in docker:
            _wait(name, settings, DOCKER_WAIT_S)
        missing = [name for name in missing if name not in docker]
    if POSTGRES in missing:
        _start_local_postgres(settings, log)
    if KAFKA in missing:
        _start_local_kafka(settings, log)
    return env_for(settings)


def stop(settings: Settings, log: Log = log_stderr) -> None:
    """Stop what `ensure_up` started; leave servers someone else runs alone."""
    settings = as_started(settings, any_address=True)
    kafka_mode = _mode(KAFKA)
    if kafka_mode == "docker":
        docker_services.stop([KAFKA], log)
    elif kafka_mode == "local" or local_kafka.running_pid(settings) is not None:
        if not local_kafka.stop(log, settings=settings):
            log("kafka: our broker was not running")
    else:
        log("kafka: not started by `connectin services up`, leaving it alone")
    clear_marker(KAFKA)

    pg_marker = read_marker(POSTGRES) or {}
    if pg_marker.get("mode") == "docker":
        docker_services.stop([POSTGRES], log)
    elif pg_marker.get("mode") == "local" and "cluster" in pg_marker:
        local_postgres.stop_cluster(pg_marker["version"], pg_marker["cluster"], log)
    elif pg_marker.get("mode") == "local":
        local_postgres.stop(settings, log)
    else:
        log("postgres: not started by `connectin services up`, leaving it alone")
    clear_marker(POSTGRES)


def stop_kafka(settings: Settings, *, hard: bool = False, log: Log = log_stderr) -> None:
    """Take the broker away: SIGTERM (controlled shutdown) or, with `hard`, SIGKILL."""
    settings = as_started(settings, any_address=True)
    mode = _mode(KAFKA)
    if mode == "docker":
        (docker_services.kill if hard else docker_services.stop)([KAFKA], log)
    elif not local_kafka.stop(log, hard=hard, settings=settings) and mode != "local":
        raise ServiceError(
            f"the broker at {settings.kafka.bootstrap_servers} was not started by "
            "`connectin services up`, so it cannot be stopped from here"
        )


def start_kafka(settings: Settings, *, log: Log = log_stderr) -> None:
    """Start the broker `stop_kafka` stopped (same data) and wait until it answers."""
    if _mode(KAFKA) == "docker":
        docker_services.start([KAFKA], log)
        _wait(KAFKA, settings, DOCKER_WAIT_S)
    else:
        _start_local_kafka(as_started(settings, any_address=True), log)
