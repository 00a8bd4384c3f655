"""Postgres and Kafka from compose.yaml, when a Docker engine answers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from devenv.common import REPO_ROOT, Log, ServiceError, run

COMPOSE_FILE = REPO_ROOT / "compose.yaml"


def engine_answers() -> bool:
    """True when a Docker daemon answers, not merely when the client is installed."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _compose_cmd() -> list[str]:
    # Compose v2 is a docker CLI plugin; older installs only have the standalone binary.
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    raise ServiceError(
        "a Docker engine answers but neither `docker compose` nor docker-compose exists"
    )


def compose(*args: str, timeout: float = 900.0) -> None:
    run(
        [
            *_compose_cmd(),
            "-f",
            str(COMPOSE_FILE),
            "--project-directory",
            str(REPO_ROOT),
            *args,
        ],
        timeout=timeout,
    )


def up(services: Sequence[str], log: Log) -> None:
    log(f"docker: starting {', '.join(services)} (docker compose up -d)")
    compose("up", "-d", *services)


def stop(services: Sequence[str], log: Log) -> None:
    # `stop`, not `down`: containers and their volumes survive for the next `up`.
    log(f"docker: stopping {', '.join(services)}")
    compose("stop", *services)


def kill(services: Sequence[str], log: Log) -> None:
    log(f"docker: killing {', '.join(services)}")
    compose("kill", *services)


def start(services: Sequence[str], log: Log) -> None:
    log(f"docker: starting {', '.join(services)}")
    compose("start", *services)
