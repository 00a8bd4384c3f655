"""A relay running in the test's own event loop, on the test's engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from core.lifecycle import StopSignal
from core.settings import Settings
from relay.service import Relay


@asynccontextmanager
async def running_relay(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Relay]:
    stop = StopSignal()
    relay = Relay(settings, engine, stop)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        stop.stop("test over")
        await asyncio.wait_for(task, 30)
