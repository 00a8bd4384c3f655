"""The HTTP load generator: keep-alive HTTP/1.1 connections driven by asyncio on uvloop,
responses parsed by httptools (the C parser uvicorn itself uses; both come with
`litestar[standard]`).

Why not httpx: on this 2-core machine the load generator shares the CPU with the API,
Postgres, Kafka, relay and consumers, so every microsecond it spends is taken from
the system under test. httpx.AsyncClient measured ~2.5 ms of CPU per request with 32
concurrent requests against the real API (a core at 400 req/s); this client ~0.1 ms
(`loadgen_cpu_us_per_request` and `loadgen_cpu_percent` in every result, from the
process's own CPU time), and the open-loop runs report the rate they achieved.

Two modes:
- `open_loop`: requests are due at a fixed rate (request i at t0 + i/rate) whether or
  not earlier ones have answered, over at most `connections` connections; a request
  that finds no free connection waits, which shows as `sent_behind_schedule_ms` and a lower
  achieved rate (the server, not the generator, is then the limit).
- `closed_loop`: `connections` workers each send their next request as soon as the
  previous answered (maximum throughput and its latency).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from bench.common import percentiles

TIMEOUT_S = 10.0


class ConnectionClosed(ConnectionError):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    # --- asyncio.Protocol and httptools callbacks --------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionClosed(str(exc or "closed by server")))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body, self._body = b"".join(self._body), []
        if not self._parser.should_keep_alive():
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    # --- client side ----------------------------------------------------------
    async def request(self, raw: bytes, timeout_s: float) -> tuple[int, bytes]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        try:
            return await asyncio.wait_for(self._waiter, timeout_s)
        except TimeoutError:
            # A late answer would be read as the next request's: drop the connection.
            self.close()
            raise
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The request's bytes, built once per request (no per-send formatting)."""
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()


class Pool:
    """Up to `size` connections, opened lazily and reopened after the server closed one
    (uvicorn closes idle keep-alive connections after 5 s)."""

    def __init__(self, target: Target, size: int) -> None:
        self._target = target
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # a slot without a connection yet

    async def checkout(self) -> _Connection | None:
        """A free slot (waits while all are busy); give it to send_with()."""
        return await self._idle.get()

    async def send_with(
        self, conn: _Connection | None, raw: bytes, timeout_s: float = TIMEOUT_S
    ) -> tuple[int, bytes]:
        try:
            if conn is None or conn.closed:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _Connection, self._target.host, self._target.port
                )
            return await conn.request(raw, timeout_s)
        finally:
            self._idle.put_nowait(conn if conn is not None and not conn.closed else None)

    async def send(self, raw: bytes, timeout_s: float = TIMEOUT_S) -> tuple[int, bytes]:
        return await self.send_with(await self.checkout(), raw, timeout_s)

    def checkin(self, conn: _Connection | None) -> None:
        """Return an unused slot from checkout()."""
        self._idle.put_nowait(conn)

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()


@dataclass
class Outcome:
    """What happened to one request: times on the wall clock (time.time(), the clock
    Postgres' now() uses on this same machine)."""

    due: float
    sent: float
    answered: float
    status: int  # 0: timeout, -1: connection error
    body: bytes = b""


@dataclass
class RunStats:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    target_per_s: float | None = None
    not_sent: int = 0

    @property
    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            name = {0: "timeout", -1: "connection_error"}.get(o.status, f"{o.status // 100}xx")
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if 200 <= o.status < 300]

    def summary(self) -> dict[str, Any]:
        n, ok = len(self.outcomes), self.ok()
        doc: dict[str, Any] = {
            "requests": n,
            "statuses": self.by_status,
            "achieved_per_s": round(len(ok) / self.wall_s, 1) if self.wall_s else 0.0,
            "response_ms": percentiles([(o.answered - o.sent) * 1000 for o in ok]) if ok else {},
            "loadgen_cpu_percent": round(100 * self.cpu_s / self.wall_s, 1) if self.wall_s else 0,
            "loadgen_cpu_us_per_request": round(1e6 * self.cpu_s / n, 1) if n else 0.0,
        }
        if self.target_per_s is not None:
            doc["target_per_s"] = self.target_per_s
            doc["not_sent"] = self.not_sent
            # How late requests left: near 0 means the generator kept the schedule.
            doc["sent_behind_schedule_ms"] = percentiles(
                [max(0.0, o.sent - o.due) * 1000 for o in self.outcomes]
            )
        return doc


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def _one(
    pool: Pool, conn: _Connection | None, raw: bytes, due: float, timeout_s: float
) -> Outcome:
    sent = time.time()
    try:
        status, body = await pool.send_with(conn, raw, timeout_s)
    except TimeoutError:
        status, body = 0, b""
    except (ConnectionError, OSError, httptools.HttpParserError):
        status, body = -1, b""
    return Outcome(due, sent, time.time(), status, body)


async def open_loop(
    pool: Pool,
    rate: float,
    seconds: float,
    request: Callable[[int], bytes],
    timeout_s: float = TIMEOUT_S,
) -> RunStats:
    """`rate` requests per second for `seconds`; request(i) builds the i-th. A request
    is sent when due or, if every connection is busy, as soon as one frees up; nothing
    is sent after `seconds` (requests left unsent are `not_sent`)."""
    total = int(rate * seconds)
    stats = RunStats()
    cpu0, start = _cpu_s(), time.time() + 0.05
    deadline = start + seconds
    tasks: list[asyncio.Task[Outcome]] = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.checkout()
        if time.time() > deadline:
            pool.checkin(conn)
            stats.not_sent = total - i
            break
        tasks.append(asyncio.create_task(_one(pool, conn, request(i), due, timeout_s)))
    stats.outcomes = list(await asyncio.gather(*tasks))
    # Answered requests over the time from the first due to the last answer.
    stats.wall_s = max(o.answered for o in stats.outcomes) - start
    stats.cpu_s = _cpu_s() - cpu0
    stats.target_per_s = rate
    return stats


async def closed_loop(
    pool: Pool,
    workers: int,
    seconds: float,
    request: Callable[[int], bytes],
    timeout_s: float = TIMEOUT_S,
) -> RunStats:
    stats = RunStats()
    counter = iter(range(10**9))
    cpu0, start = _cpu_s(), time.time()
    deadline = start + seconds

    async def worker() -> None:
        while time.time() < deadline:
            raw = request(next(counter))
            outcome = await _one(pool, await pool.checkout(), raw, time.time(), timeout_s)
            stats.outcomes.append(outcome)

    await asyncio.gather(*(worker() for _ in range(workers)))
    stats.wall_s = time.time() - start
    stats.cpu_s = _cpu_s() - cpu0
    return stats


async def wait_until_up(pool: Pool, target: Target, timeout_s: float = 60.0) -> None:
    """Until GET /health answers 200 (the app has started, its lifespan included)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, _ = await pool.send(target.get("/health"), 2.0)
            if status == 200:
                return
            last = f"status {status}"
        except (TimeoutError, ConnectionError, OSError) as exc:
            last = repr(exc)  # not listening yet: that is what we wait for
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{target} did not answer /health within {timeout_s} s: {last}")
