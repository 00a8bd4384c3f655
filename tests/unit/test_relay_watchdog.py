"""The relay's event-loop watchdog: a loop blocked past the threshold is reported from
its own thread, with the stack that blocks it, and the stall's length once the loop
runs again."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from core.lifecycle import StopSignal
from relay.watchdog import LoopWatchdog


def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_blocked_loop_is_reported_with_its_stack() -> None:
    watchdog = LoopWatchdog(0.3)
    with capture_logs() as logs:
        stop = StopSignal()
        task = asyncio.create_task(watchdog.run(stop))
        await asyncio.sleep(0.1)
        block_the_loop(1.0)
        await asyncio.sleep(0.2)
        stop.stop("test over")
        await asyncio.wait_for(task, 5)
    blocked = [e for e in logs if e["event"].startswith("relay event loop blocked")]
    resumed = [e for e in logs if e["event"] == "relay event loop ran again after a stall"]
    assert len(blocked) == 1, logs
    assert "block_the_loop" in blocked[0]["stack"]
    assert len(resumed) == 1 and resumed[0]["stalled_s"] >= 0.3, logs


async def test_a_healthy_loop_is_not_reported() -> None:
    # Far above any pause an idle loop has, even on a loaded machine.
    watchdog = LoopWatchdog(2.0)
    with capture_logs() as logs:
        stop = StopSignal()
        task = asyncio.create_task(watchdog.run(stop))
        await asyncio.sleep(1.0)
        stop.stop("test over")
        await asyncio.wait_for(task, 5)
    assert [e["event"] for e in logs] == ["stop requested"]
