"""Entry point of `connectin consumers`."""

from __future__ import annotations

import structlog

from consumers.handlers import default_registry
from consumers.registry import Registry
from consumers.service import ConsumerService
from core.db import create_engine
from core.lifecycle import StopSignal
from core.metrics_server import EXIT_PORT_TAKEN, MetricsPortTaken, start_metrics_server
from core.settings import Settings

log = structlog.get_logger(__name__)


async def run(settings: Settings, *, registry: Registry | None = None) -> int:
    """Run every registered consumer group until SIGTERM/SIGINT."""
    instance_id = settings.consumers.instance_id or None
    stop = StopSignal()
    stop.install()
    if settings.consumers.metrics_port:
        try:
            start_metrics_server(settings.consumers.metrics_port, "CONSUMER_METRICS_PORT")
        except MetricsPortTaken as exc:
            log.error("consumers cannot start", reason=str(exc))
            return EXIT_PORT_TAKEN
    registry = registry or default_registry()
    # No pre-ping: a batch that finds its connection broken is retried anyway
    # (core/db_errors.py), and the ping would be a round trip per batch.
    engine = create_engine(
        settings.database, application_name="connectin-consumers", pre_ping=False
    )
    log.info(
        "consumers starting",
        consumers=[c.name for c in registry.consumers],
        instance_id=instance_id,
    )
    try:
        code = await ConsumerService(
            settings, engine, stop, registry, instance_id=instance_id
        ).run()
    finally:
        await engine.dispose()
    log.info("consumers stopped", reason=stop.reason or "run ended", exit_code=code)
    return code
