"""What one hop between two processes costs this machine, with no platform code.

Every step of the platform is hops: an API request is the client's request and the
answer plus two Postgres round trips; a relay batch is a few Postgres and Kafka round
trips; each one wakes a process that was waiting, often on the other core. On a
virtual machine a wake-up across cores can cost far more than the work it carries, and
that cost differs between machines whose cores are equally fast, so the figures of
two runs on two machines are comparable only beside these:

- a `SELECT 1` round trip on one asyncpg connection (uvloop, as the platform runs it):
  the client's CPU, the Postgres backend's CPU and the wall time per round trip;
- one byte there and back over a socket pair between two processes, both pinned to
  one core and pinned to two cores: the sender's CPU and the wall time.

    python -m bench hop-cost
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from typing import Any

import asyncpg
import uvloop

from bench.common import progress, write_result
from bench.procs import cpu_seconds, load_average
from core.settings import Settings

ROUND_TRIPS = 5000
PING_PONGS = 20_000


async def _select_one(url: str, n: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        server, client, wall = cpu_seconds(backend), time.process_time(), time.perf_counter()
        for _ in range(n):
            await conn.fetchval("SELECT 1")
        return {
            "client_cpu_us": (time.process_time() - client) / n * 1e6,
            "server_cpu_us": (cpu_seconds(backend) - server) / n * 1e6,
            "wall_us": (time.perf_counter() - wall) / n * 1e6,
        }
    finally:
        await conn.close()


def _ping_pong(mine: int, peer: int, n: int) -> dict[str, float]:
    """The caller pinned to core `mine`, a forked peer to core `peer`."""
    ours, theirs = socket.socketpair()
    affinity = os.sched_getaffinity(0)
    child = os.fork()
    if child == 0:
        try:
            ours.close()
            os.sched_setaffinity(0, {peer})
            for _ in range(n):
                theirs.recv(1)
                theirs.send(b"y")
        finally:
            os._exit(0)
    theirs.close()
    try:
        os.sched_setaffinity(0, {mine})
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            ours.send(b"x")
            ours.recv(1)
        return {
            "cpu_us": (time.process_time() - cpu) / n * 1e6,
            "wall_us": (time.perf_counter() - wall) / n * 1e6,
        }
    finally:
        os.sched_setaffinity(0, affinity)
        ours.close()
        os.waitpid(child, 0)


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(s[k] for s in samples), 1) for k in samples[0]}


def main(repeat: int = 3) -> dict[str, Any]:
    url = Settings.from_env().database.libpq_url
    cores = sorted(os.sched_getaffinity(0))
    select_one: list[dict[str, float]] = []
    same_core: list[dict[str, float]] = []
    two_cores: list[dict[str, float]] = []
    load_before = load_average()
    # Interleaved, so drift in the machine's load hits every kind alike.
    for _ in range(repeat):
        select_one.append(uvloop.run(_select_one(url, ROUND_TRIPS)))
        same_core.append(_ping_pong(cores[0], cores[0], PING_PONGS))
        if len(cores) > 1:
            two_cores.append(_ping_pong(cores[0], cores[1], PING_PONGS))
    result: dict[str, Any] = {
        "load_average_before": load_before,
        "repeat": repeat,
        "postgres_select_1_round_trip": {"round_trips": ROUND_TRIPS, **_medians(select_one)},
        "socket_ping_pong_one_core": {"round_trips": PING_PONGS, **_medians(same_core)},
        "socket_ping_pong_two_cores": (
            {"round_trips": PING_PONGS, **_medians(two_cores)}
            if two_cores
            else {"skipped": "one core available"}
        ),
    }
    progress(str(result))
    write_result("hop_cost", result)
    return result
