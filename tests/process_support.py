"""Run platform processes as real subprocesses (so tests can kill -9 them), configured
through the same environment variables as production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from core.settings import Settings


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes Settings.from_env() rebuild `settings`."""
    t = settings.kafka.topics
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "KAFKA_TRANSACTIONAL_ID_PREFIX": settings.kafka.transactional_id_prefix,
        "TOPIC_USER_EVENTS": t.user,
        "TOPIC_PROJECT_EVENTS": t.project,
        "TOPIC_MESSAGE_EVENTS": t.message,
        "TOPIC_PAYMENT_EVENTS": t.payment,
        "TOPIC_RELAY_CHECKPOINTS": t.checkpoint,
        "TOPIC_PARTITIONS": str(t.partitions),
        "RELAY_SHARDS": str(settings.relay.shards),
        "RELAY_BATCH_SIZE": str(settings.relay.batch_size),
        "RELAY_METRICS_PORT": str(settings.relay.metrics_port),
        "RELAY_LOCK_CHECK_MS": str(settings.relay.lock_check_ms),
        "CONSUMER_METRICS_PORT": str(settings.consumers.metrics_port),
        "LOG_LEVEL": settings.log_level,
    }
    env.update(extra)
    return env


class Process:
    """A platform process whose output goes to a log file kept for failure reports."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path | None = None) -> None:
        self.module = module
        directory = log_dir or Path(tempfile.mkdtemp(prefix="connectin-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{module}-{os.getpid()}-{id(self)}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """kill -9: no cleanup, no flush, exactly like a crash."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout_s)
        self._log.close()
        return code

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
