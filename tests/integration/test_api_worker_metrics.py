"""`connectin api --workers N`: a scrape of `/metrics` reaches one worker, yet it must
count every worker's requests, or counters would jump between workers' counts and
every rate() over them would be garbage. The real command, two real workers."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.worker_metrics import MULTIPROC_DIR_VAR
from core.settings import Settings
from tests.support.consumers import wait_until
from tests.support.ports import free_port
from tests.support.processes import api_process, settings_env

ROUNDS = 20
CONCURRENT = 10


def workers_of(pid: int) -> list[int]:
    """The uvicorn workers (spawned by multiprocessing) among the children of `pid`."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def two_workers(pid: int) -> Callable[[], Awaitable[bool]]:
    """A wait_until condition: the command of `pid` has its two workers."""

    async def started() -> bool:
        return len(workers_of(pid)) >= 2

    return started


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def worker_files(directory: Path) -> list[str]:
    """The counter files in the workers' directory (none once it is gone)."""
    return sorted(path.name for path in directory.glob("counter_*.db"))


def health_counts(exposition: str) -> tuple[float, float]:
    """(requests counted, latency observations) of GET /health answered 200."""
    requests = observed = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.labels.get("route") != "/health" or sample.labels.get("status") != "200":
                continue
            if sample.name == "connectin_api_http_requests_total":
                requests += sample.value
            elif sample.name == "connectin_api_http_request_duration_seconds_count":
                observed += sample.value
    return requests, observed


def fresh_connections(base_url: str) -> httpx.AsyncClient:
    # A kept-alive connection stays with one worker; new ones are spread over both.
    return httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_keepalive_connections=0))


async def test_metrics_add_up_every_workers_requests(settings: Settings) -> None:
    with api_process(settings_env(settings), free_port(), workers=2) as api:
        await wait_until(two_workers(api.process.pid), 30, "two uvicorn workers")
        directory = Path(environ_of(workers_of(api.process.pid)[0])[MULTIPROC_DIR_VAR])
        async with fresh_connections(api.base_url) as http:
            # The start-up probe of api_process is counted too.
            before = health_counts((await http.get("/metrics")).text)
            for _ in range(ROUNDS):
                answers = await asyncio.gather(*(http.get("/health") for _ in range(CONCURRENT)))
                assert [a.status_code for a in answers] == [200] * CONCURRENT
                await asyncio.sleep(0.05)
            scrapes = [(await http.get("/metrics")).text for _ in range(8)]
        # Both workers wrote their counts.
        assert len(worker_files(directory)) >= 2, worker_files(directory)
    sent = ROUNDS * CONCURRENT
    expected = (before[0] + sent, before[1] + sent)
    assert [health_counts(text) for text in scrapes] == [expected] * len(scrapes)
    assert worker_files(directory) == [], "the workers' metrics outlived the API"


async def test_a_killed_commands_directory_is_removed_by_the_next_start(
    settings: Settings,
) -> None:
    """kill -9 of the command and its workers (an OOM kill of the group) runs no
    cleanup: the next `connectin api --workers N` removes what it left, not what a
    live command holds."""
    env = settings_env(settings)
    with api_process(env, free_port(), workers=2) as killed:
        await wait_until(two_workers(killed.process.pid), 30, "two uvicorn workers")
        workers = workers_of(killed.process.pid)
        orphan = Path(environ_of(workers[0])[MULTIPROC_DIR_VAR])
        killed.process.kill()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
    assert await asyncio.to_thread(orphan.is_dir)
    with api_process(env, free_port(), workers=2) as live:
        await wait_until(two_workers(live.process.pid), 30, "two uvicorn workers")
        held = Path(environ_of(workers_of(live.process.pid)[0])[MULTIPROC_DIR_VAR])
        left = await asyncio.to_thread(orphan.exists)
        assert not left, "the killed command's metrics directory was left"
        with api_process(env, free_port(), workers=2) as beside:
            await wait_until(two_workers(beside.process.pid), 30, "two uvicorn workers")
            kept = await asyncio.to_thread(held.is_dir)
            assert kept, "a live command's metrics directory was removed"
    assert not await asyncio.to_thread(held.exists)
