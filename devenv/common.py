"""What the local, Docker and orchestration code for Postgres and Kafka share.

Paths under the checkout's `.cache/`, the one error type the CLI reports, a
subprocess helper that keeps the failing command's output, and the probes that
decide whether a service "answers" (a real query / a real metadata request, not
just an open port, because an open port says nothing about credentials or a
broker that is still fencing itself).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.kafka import admin_config
from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".cache"
STATE_DIR = CACHE_DIR / "services"

Log = Callable[[str], None]


class ServiceError(RuntimeError):
    """A service could not be installed, started, stopped or reached."""


def log_stderr(message: str) -> None:
    # stderr, so `connectin services env` and friends keep stdout shell-evaluable.
    print(message, file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str],
    *,
    input_text: str | None = None,
    timeout: float = 120.0,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; on failure raise with its output so the user sees why."""
    try:
        result = subprocess.run(
            list(cmd),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError as exc:
        raise ServiceError(f"{cmd[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        output = (result.stderr or "") + (result.stdout or "")
        raise ServiceError(
            f"`{' '.join(cmd)}` failed with exit code {result.returncode}:\n{output.strip()}"
        )
    return result


def postgres_address(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.database.libpq_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def postgres_credentials(settings: Settings) -> tuple[str, str, str]:
    """(user, password, database) from the configured URL."""
    parts = urlsplit(settings.database.libpq_url)
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    database = unquote(parts.path.lstrip("/")) or user
    if not user or not password:
        raise ServiceError(
            "DATABASE_URL must name a user and a password for a local Postgres "
            f"(got {redact_url(settings.database.libpq_url)})"
        )
    return user, password, database


def kafka_address(settings: Settings) -> tuple[str, int]:
    first = settings.kafka.bootstrap_servers.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise ServiceError(f"KAFKA_BOOTSTRAP_SERVERS entry {first!r} has no port") from None


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"}


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_answers(settings: Settings, timeout: float = 3.0) -> bool:
    """True when the configured database accepts our credentials and runs a query."""
    if not tcp_open(*postgres_address(settings), timeout=timeout):
        return False
    try:
        # libpq's connect_timeout has a 2 s floor; below that it means "none".
        with psycopg.connect(
            settings.database.libpq_url, connect_timeout=max(2, int(timeout))
        ) as conn:
            row = conn.execute("SELECT 1").fetchone()
    except psycopg.Error:
        return False
    return row == (1,)


def kafka_answers(settings: Settings, timeout: float = 5.0) -> bool:
    """True when a broker answers a metadata request and lists at least one broker."""
    if not tcp_open(*kafka_address(settings), timeout=min(timeout, 2.0)):
        return False
    admin = AdminClient(admin_config(settings.kafka.bootstrap_servers, quiet=True))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return len(metadata.brokers) > 0


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    gave_up: Callable[[], str] | None = None,
) -> None:
    """Poll `ready` until it is true; `gave_up` may stop early and explain (e.g. process died)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if gave_up is not None:
            reason = gave_up()
            if reason:
                raise ServiceError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def read_marker(name: str) -> dict[str, str] | None:
    """What `up` recorded about a service it started itself (None: we did not start it)."""
    path = STATE_DIR / f"{name}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ServiceError(f"{path} is corrupt; delete it if nothing is running") from None
    return {str(k): str(v) for k, v in data.items()}


def write_marker(name: str, data: Mapping[str, str]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / f"{name}.json").write_text(json.dumps(dict(data), indent=2) + "\n")


def clear_marker(name: str) -> None:
    (STATE_DIR / f"{name}.json").unlink(missing_ok=True)
