"""A watchdog for the relay's own event loop, from a thread of its own.

A blocked event loop (a CPU-bound bug, a blocking call by mistake) stops the lease
heartbeat, so peers evict this relay after RELAY_LEASE_TIMEOUT_MS (relay/leases.py).
The loop cannot report its own blockage, so this thread does: one error line with the
main thread's stack while it is blocked (what to fix), and one line with the length
of the stall once it runs again (a SIGSTOP or a paused VM shows only the latter).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

import structlog

from core.lifecycle import StopSignal

log = structlog.get_logger(__name__)


class LoopWatchdog:
    def __init__(self, threshold_s: float) -> None:
        self._threshold_s = threshold_s
        self._tick_s = max(0.05, threshold_s / 10)
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._watch, name="relay-watchdog", daemon=True)

    async def run(self, stop: StopSignal) -> None:
        """Tick from the loop until `stop`; the thread lives as long as this task."""
        self._last = time.monotonic()
        self._stop.clear()
        if not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="relay-watchdog", daemon=True)
            self._thread.start()
        try:
            while not stop.stopping:
                now = time.monotonic()
                stalled = now - self._last
                if stalled > self._threshold_s:
                    log.warning(
                        "relay event loop ran again after a stall", stalled_s=round(stalled, 1)
                    )
                self._last = now
                await stop.sleep(self._tick_s)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self._tick_s):
            stalled = time.monotonic() - self._last
            if stalled <= self._threshold_s:
                reported = False
                continue
            if reported:
                continue
            reported = True
            frame = sys._current_frames().get(self._main or 0)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            log.error(
                "relay event loop blocked; peers evict this relay if it lasts",
                blocked_s=round(stalled, 1),
                stack=stack[-4000:],
            )
