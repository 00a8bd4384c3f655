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
    env = {**os.environ, **settings.to_env()}
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
