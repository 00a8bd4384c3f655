"""PostgreSQL from Debian's packages, managed with postgresql-common's cluster tools.

Used when neither a configured server nor a Docker engine answers. We drive the
Debian cluster (`pg_lsclusters`, `pg_createcluster`, `pg_ctlcluster`) instead of a
private `initdb` so the server is the ordinary system one an operator already
knows how to inspect, and `pg_ctlcluster` does the privilege drop for us.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from devenv.common import (
    Log,
    ServiceError,
    is_loopback,
    postgres_address,
    postgres_answers,
    postgres_credentials,
    run,
    wait_until,
)

PG_LIB_DIR = Path("/usr/lib/postgresql")

# Idempotent: `\gexec` runs each generated statement, and the WHERE clauses make the
# CREATEs no-ops when the objects exist. The ALTER re-asserts password and flags so a
# role left over from an older setup still works with the configured URL. psql
# variables (`:'user'`) quote the values, so odd passwords cannot break the SQL.
ROLE_AND_DATABASE_SQL = r"""
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
"""


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool


def _privileged(cmd: list[str]) -> list[str]:
    # Root on CI; a developer's laptop goes through sudo (which may prompt).
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["sudo", "-u", "postgres", *cmd]


def ensure_installed(log: Log) -> None:
    if shutil.which("pg_ctlcluster") is not None:
        return
    if shutil.which("apt-get") is None:
        raise ServiceError("PostgreSQL is not installed and this is not a Debian/Ubuntu system")
    log("postgres: installing the postgresql package (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(_privileged(["apt-get", "update"]), timeout=600, env=env)
    run(_privileged(["apt-get", "install", "-y", "postgresql"]), timeout=1200, env=env)


def clusters() -> list[Cluster]:
    out = run(["pg_lsclusters", "--no-header"]).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2].isdigit():
            online = fields[3].startswith("online")
            found.append(Cluster(fields[0], fields[1], int(fields[2]), online))
    return found


def _installed_version() -> str:
    candidates = PG_LIB_DIR.iterdir() if PG_LIB_DIR.exists() else iter(())
    versions = [p.name for p in candidates if p.name.isdigit() and (p / "bin/postgres").exists()]
    if not versions:
        raise ServiceError(f"no PostgreSQL server binaries under {PG_LIB_DIR}")
    return max(versions, key=int)


def find_cluster(settings: Settings) -> Cluster | None:
    """The local cluster that serves the configured port, if any."""
    _, port = postgres_address(settings)
    for cluster in clusters():
        if cluster.port == port:
            return cluster
    return None


def ensure_cluster(settings: Settings, log: Log) -> Cluster:
    host, port = postgres_address(settings)
    if not is_loopback(host):
        raise ServiceError(
            f"DATABASE_URL points at {host}, which does not answer; a local Postgres can "
            "only be started for 127.0.0.1/localhost"
        )
    ensure_installed(log)
    cluster = find_cluster(settings)
    if cluster is not None:
        return cluster
    version = _installed_version()
    taken = {c.name for c in clusters() if c.version == version}
    # "main" is the Debian default; when it exists on another port (someone's own
    # server), a cluster of our own on the configured port leaves theirs untouched.
    name = "main" if "main" not in taken else "connectin"
    if name in taken:
        raise ServiceError(
            f"clusters {version}/main and {version}/connectin exist but none listens on "
            f"port {port}; set DATABASE_URL to one of their ports"
        )
    log(f"postgres: creating cluster {version}/{name} on port {port}")
    run(_privileged(["pg_createcluster", version, name, "--port", str(port)]), timeout=300)
    created = find_cluster(settings)
    if created is None:
        raise ServiceError(f"pg_createcluster {version} {name} did not produce a cluster")
    return created


def start(settings: Settings, log: Log) -> Cluster:
    """Start the cluster for the configured port; returns it as it was before starting."""
    cluster = ensure_cluster(settings, log)
    if not cluster.online:
        log(f"postgres: starting cluster {cluster.version}/{cluster.name} (port {cluster.port})")
        result = run(
            _privileged(["pg_ctlcluster", cluster.version, cluster.name, "start"]), check=False
        )
        # Exit code 2 means "already running": someone raced us, which is fine.
        if result.returncode not in (0, 2):
            raise ServiceError(
                f"pg_ctlcluster {cluster.version} {cluster.name} start failed:\n"
                f"{(result.stderr + result.stdout).strip()}"
            )
    return cluster


def stop(settings: Settings, log: Log, *, immediate: bool = False) -> None:
    """Stop the cluster serving the configured port; `immediate` is like a crash."""
    cluster = find_cluster(settings)
    if cluster is None:
        port = postgres_address(settings)[1]
        raise ServiceError(f"no local Postgres cluster listens on port {port}")
    if cluster.online:
        stop_cluster(cluster.version, cluster.name, log, immediate=immediate)


def stop_cluster(version: str, name: str, log: Log, *, immediate: bool = False) -> None:
    # immediate: no shutdown checkpoint, so the next start runs crash recovery.
    mode = "immediate" if immediate else "fast"
    log(f"postgres: stopping cluster {version}/{name} ({mode})")
    result = run(_privileged(["pg_ctlcluster", "-m", mode, version, name, "stop"]), check=False)
    # Exit code 2 means "not running".
    if result.returncode not in (0, 2):
        raise ServiceError(f"pg_ctlcluster stop failed:\n{(result.stderr + result.stdout).strip()}")


def ensure_role_and_database(settings: Settings, cluster: Cluster) -> None:
    user, password, database = postgres_credentials(settings)
    run(
        _as_postgres(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                str(cluster.port),
                "-d",
                "postgres",
                "-v",
                f"user={user}",
                "-v",
                f"password={password}",
                "-v",
                f"database={database}",
            ]
        ),
        input_text=ROLE_AND_DATABASE_SQL,
        # The postgres user may not be able to enter the caller's directory.
        cwd="/",
    )


def wait_ready(settings: Settings, timeout: float = 60.0) -> None:
    wait_until(lambda: postgres_answers(settings), timeout=timeout, what="postgres")


def ensure_running(settings: Settings, log: Log) -> Cluster | None:
    """Install, create, start and provision; returns the cluster if this call started it."""
    before = start(settings, log)
    ensure_role_and_database(settings, before)
    wait_ready(settings)
    return None if before.online else before
