"""Run platform processes as real subprocesses (so tests can kill -9 them), configured
through the same environment variables as production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from core.settings import Settings

API_START_TIMEOUT_S = 30.0


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes Settings.from_env() rebuild `settings`."""
    env = {**os.environ, **settings.to_env()}
    env.update(extra)
    return env


class Process:
    """A platform process whose output goes to a log file kept for failure reports.

    Every instance is remembered so an autouse fixture (`no_leftover_processes`) can
    kill whatever a failing test left running."""

    started: ClassVar[list[Process]] = []

    @classmethod
    def kill_leftovers(cls) -> list[str]:
        """Kill processes still alive; returns their names for the failure report."""
        leftovers = [p for p in cls.started if p.alive()]
        for process in leftovers:
            process.kill()
        cls.started.clear()
        return [f"{p.module} (pid {p.pid})" for p in leftovers]

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        log_dir: Path | None = None,
        argv: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        """`python -m module`, or `argv` (then `module` only names it). Output goes to
        `log_path` (appended) when given, else to a new file in `log_dir`."""
        self.module = module
        if log_path is None:
            directory = log_dir or Path(tempfile.mkdtemp(prefix="connectin-"))
            directory.mkdir(parents=True, exist_ok=True)
            log_path = directory / f"{module}-{os.getpid()}-{id(self)}.log"
        self.log_path = log_path
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            argv or [sys.executable, "-m", module],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        Process.started.append(self)

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
        """SIGTERM and wait; returns the exit code. A process that ignores it is killed
        (so no test leaves one behind) and the test fails."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.module} did not stop within {timeout_s}s of SIGTERM:\n{self.log_tail()}"
            ) from None
        self._log.close()
        return code

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A test that fails half-way must not leave a relay or consumer running: it would
    keep working on (or against) the next tests' data."""
    yield
    Process.kill_leftovers()


def consumers_process(env: dict[str, str], log_path: Path, instance_id: str) -> Process:
    """`python -m consumers` with a static membership id, its output appended to
    `log_path`, at INFO whatever the shell's LOG_LEVEL: the crash tests wait for and
    count its log lines."""
    argv = [sys.executable, "-m", "consumers", "--instance-id", instance_id]
    return Process("consumers", {**env, "LOG_LEVEL": "INFO"}, argv=argv, log_path=log_path)


@dataclass(frozen=True)
class RunningApi:
    base_url: str
    process: Process


@contextmanager
def api_process(
    env: dict[str, str], port: int, log_dir: Path | None = None, workers: int = 1
) -> Iterator[RunningApi]:
    """`connectin api` exactly as deployed (uvicorn) on `port`, yielded once `/health`
    answers and stopped with SIGTERM afterwards."""
    base_url = f"http://127.0.0.1:{port}"
    connectin = str(Path(sys.executable).with_name("connectin"))
    argv = [connectin, "api", "--host", "127.0.0.1", "--port", str(port)]
    process = Process("api", env, log_dir, argv=[*argv, "--workers", str(workers)])
    try:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while True:
            if not process.alive():
                raise RuntimeError(f"connectin api exited:\n{process.log_tail()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"connectin api did not start:\n{process.log_tail()}")
            time.sleep(0.1)
        yield RunningApi(base_url, process)
    finally:
        if process.alive():
            process.terminate()
