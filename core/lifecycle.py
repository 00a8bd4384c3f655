"""Process lifecycle shared by the relay and the consumers: a stop event set by
SIGTERM/SIGINT, and a record of why the process stopped."""

from __future__ import annotations

import asyncio
import signal

import structlog

log = structlog.get_logger(__name__)


class StopSignal:
    """Set once by SIGTERM/SIGINT (or by code); workers wait on it beside their work."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            log.info("stop requested", reason=reason)
            self.event.set()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, f"received {sig.name}")

    async def wait(self, event: asyncio.Event) -> bool:
        """Wait for `event` unless stopped first; True when the stop came."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.event.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.stopping

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when the stop came."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
