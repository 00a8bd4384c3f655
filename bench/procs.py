"""The platform's processes as the benchmarks run them (real child processes, started
with the settings' environment, stopped with SIGTERM), and what we read about them
from /proc: peak memory and CPU time."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from core.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECTIN = str(Path(sys.executable).parent / "connectin")
LOGS = Path(tempfile.gettempdir()) / "connectin-bench-logs"
STOP_TIMEOUT_S = 30.0


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _log_file(name: str) -> BinaryIO:
    LOGS.mkdir(exist_ok=True)
    return open(LOGS / f"{name}.log", "wb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env(settings: Settings) -> dict[str, str]:
    # WARNING: per-request log lines would cost the API more than the work measured.
    return {**os.environ, **settings.to_env(), "LOG_LEVEL": "WARNING"}


def status_kb(pid: int, field_name: str) -> int:
    """A `VmHWM`/`VmRSS` line of /proc/<pid>/status, in kB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass  # exited: nothing left to read
    return 0


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (its threads included), or of its thread `tid` alone
    (not /proc/<tid>/stat: that reads the whole process too)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (an API's uvicorn workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


FOREIGN = (
    b"pytest",
    b"-m\x00bench",
    b"-m\x00relay",
    b"-m\x00consumers",
    b"connectin\x00api",
    b"connectin\x00relay",
    b"connectin\x00consumers",
    b"connectin\x00up",
)


def foreign_activity() -> list[str]:
    """Relays, consumers, APIs, test runs and benchmarks of any checkout on this machine
    that are not this benchmark's own: they share the 2 cores."""
    mine = os.getpid()
    # This run's own chain of parents (`make bench`, `timeout ... python -m bench`).
    ancestors = set()
    pid = os.getppid()
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine or int(entry.name) in ancestors:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent != mine and any(tag in cmdline for tag in FOREIGN):
            command = cmdline.replace(b"\x00", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:100]}")
    return sorted(found)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def service_pids() -> dict[str, list[int]]:
    """The shared servers' processes: every Postgres process (other databases' too:
    the server is shared) and the Kafka broker's JVM."""
    found: dict[str, list[int]] = {"postgres_server": [], "kafka_broker": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if cmdline.startswith(b"postgres"):
            found["postgres_server"].append(int(entry.name))
        elif b"kafka.Kafka" in cmdline:
            found["kafka_broker"].append(int(entry.name))
    return found


@dataclass
class CpuWindow:
    """CPU used by named processes, the shared servers and the whole machine between
    start() and stop(); 100 % = one core busy, except machine_busy (all cores)."""

    pids: dict[str, int]
    _groups: dict[str, list[int]] = field(default_factory=dict)
    _cpu0: dict[int, float] = field(default_factory=dict)
    _machine0: tuple[float, float] = (0.0, 0.0)
    _wall0: float = 0.0
    # The last window's length, set by stop().
    seconds: float = 0.0

    def start(self) -> None:
        # A process's children count with it (uvicorn workers under `connectin api`),
        # except named ones and theirs (the runner's children are the platform), and
        # the shared servers, which count on their own: a broker that `api-write`
        # restarted is the runner's child, and counted the runner as the broker.
        below = {n: descendants(p) for n, p in self.pids.items()}
        services = service_pids()
        servers = {pid for pids in services.values() for pid in pids}

        def own(name: str) -> list[int]:
            nested = [o for o, p in self.pids.items() if o != name and p in below[name]]
            taken = servers | {pid for o in nested for pid in [self.pids[o], *below[o]]}
            return [self.pids[name], *(pid for pid in below[name] if pid not in taken)]

        self._groups = {**{n: own(n) for n in self.pids}, **services}
        self._cpu0 = {pid: cpu_seconds(pid) for pids in self._groups.values() for pid in pids}
        self._machine0 = machine_busy()
        self._wall0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = self.seconds = time.monotonic() - self._wall0

        def used_by(pids: list[int]) -> float:
            # A process that exited meanwhile reads 0: it counts as 0, not negative.
            return sum(max(0.0, cpu_seconds(pid) - self._cpu0.get(pid, 0.0)) for pid in pids)

        # Postgres backends started meanwhile (a pool's overflow connections) count
        # whole; ones that ended meanwhile are missed, so Postgres reads a floor.
        now = service_pids()
        used = {
            f"{name}_cpu_percent": round(
                100 * used_by(sorted(set(pids) | set(now.get(name, [])))) / wall, 1
            )
            for name, pids in self._groups.items()
        }
        busy, total = machine_busy()
        # Of all cores together: 100 % = every core busy.
        used["machine_busy_percent"] = round(
            100 * (busy - self._machine0[0]) / max(1.0, total - self._machine0[1]), 1
        )
        return used

    def per_event_us(self, used: dict[str, float], events: int) -> dict[str, float]:
        """Microseconds of CPU per event of each process, from what stop() returned
        for a window in which `events` events went through."""
        return {
            name.removesuffix("_cpu_percent"): round(percent / 100 * self.seconds / events * 1e6, 1)
            for name, percent in used.items()
            if name.endswith("_cpu_percent")
        }


@dataclass
class Platform:
    """Running processes by name, e.g. {"api": p, "relay": p, "consumers-1": p}."""

    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    async def start(self, name: str, *argv: str, settings: Settings) -> asyncio.subprocess.Process:
        """Output goes to LOGS/<name>.log: the dual write's failures alone log hundreds
        of tracebacks, which would bury the benchmark's own progress lines."""
        log = _log_file(name)  # the child keeps its own descriptor: close ours after
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=child_env(settings), stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.returncode is not None}
        if dead:
            tails = {n: _tail(LOGS / f"{n}.log") for n in dead}
            raise RuntimeError(f"processes exited during the benchmark: {dead}; logs: {tails}")

    def peak_rss_mb(self) -> dict[str, float]:
        """The kernel's high-water mark of each process's resident memory (VmHWM):
        the true peak, not a sample; of a process with workers, the largest of it and
        its workers (the goal is per process). Read before stopping them."""
        return {
            name: round(
                max(status_kb(pid, "VmHWM") for pid in [p.pid, *descendants(p.pid)]) / 1024, 1
            )
            for name, p in self.procs.items()
            if p.returncode is None
        }

    async def stop_one(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                print(f"[bench] {name} ignored SIGTERM for {STOP_TIMEOUT_S} s, killing", flush=True)
                proc.kill()
                await proc.wait()
        self.procs.clear()


# As `make up` runs it on this 2-core machine (one worker per core).
API_WORKERS = 2


def api_argv(port: int, workers: int = API_WORKERS) -> list[str]:
    """The real API exactly as `connectin api` runs it: uvicorn with `workers` worker
    processes (uvloop and httptools, uvicorn's defaults when installed)."""
    return [
        *(CONNECTIN, "api", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers)),
    ]


def relay_argv() -> list[str]:
    return [sys.executable, "-m", "relay"]


def consumers_argv(instance: str | None = None) -> list[str]:
    return [sys.executable, "-m", "consumers", *(["--instance-id", instance] if instance else [])]
