"""Entry point of `connectin relay`."""

from __future__ import annotations

import structlog

from core.db import create_engine
from core.lifecycle import StopSignal
from core.metrics_server import EXIT_PORT_TAKEN, MetricsPortTaken, start_metrics_server
from core.settings import Settings
from core.topics import TopicError
from relay.service import Relay, StrandedShards

log = structlog.get_logger(__name__)


async def run(settings: Settings) -> int:
    stop = StopSignal()
    stop.install()
    if settings.relay.metrics_port:
        try:
            start_metrics_server(settings.relay.metrics_port, "RELAY_METRICS_PORT")
        except MetricsPortTaken as exc:
            log.error("relay cannot start", reason=str(exc))
            return EXIT_PORT_TAKEN
    engine = create_engine(
        settings.database, application_name="connectin-relay-worker", pre_ping=False
    )
    log.info("relay starting", shards=settings.relay.shards, batch_size=settings.relay.batch_size)
    relay = Relay(settings, engine, stop)
    try:
        await relay.run()
    except (TopicError, StrandedShards) as exc:
        log.error("relay cannot start", reason=str(exc))
        return 2
    finally:
        await engine.dispose()
    log.info("relay stopped", reason=stop.reason or "run ended")
    return 1 if relay.failed else 0
