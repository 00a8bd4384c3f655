"""The consumers process: makes sure its topics exist, runs one worker per consumer
group until the stop signal, then lets each finish its record in flight."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.dead_letter import dlq_topic
from consumers.registry import Registry
from consumers.worker import ConsumerWorker
from core.lifecycle import StopSignal
from core.settings import Settings
from core.topics import TopicSpec, ensure_topics

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 20.0


def consumer_topics(settings: Settings, registry: Registry) -> list[TopicSpec]:
    """The topics read (the relay creates them too; whoever starts first does) and
    their dead-letter topics."""
    partitions = settings.kafka.topics.partitions
    names = sorted(
        {name for spec in registry.consumers for name in spec.topics(settings.kafka.topics)}
    )
    return [TopicSpec(n, partitions) for n in names] + [
        TopicSpec(dlq_topic(n), partitions) for n in names
    ]


class ConsumerService:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        stop: StopSignal,
        registry: Registry,
        *,
        instance_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._stop = stop
        self._registry = registry
        self._instance_id = instance_id

    async def run(self) -> int:
        """0 after a requested stop; 1 when a consumer failed (the others are stopped)."""
        specs = consumer_topics(self._settings, self._registry)
        await asyncio.to_thread(ensure_topics, self._settings.kafka.bootstrap_servers, specs)
        workers = [
            ConsumerWorker(
                spec, self._settings, self._engine, self._stop, instance_id=self._instance_id
            )
            for spec in self._registry.consumers
        ]
        tasks = [asyncio.create_task(w.run(), name=f"consumer-{w.name}") for w in workers]
        stopped = asyncio.create_task(self._stop.event.wait(), name="consumers-stop")
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in tasks if t.done() and (t.cancelled() or t.exception())]
        for task in failed:
            error = "cancelled" if task.cancelled() else repr(task.exception())
            log.error(
                "consumer failed, stopping the others",
                task=task.get_name(),
                error=error,
                exc_info=None if task.cancelled() else task.exception(),
            )
        if failed:
            self._stop.stop(f"{failed[0].get_name()} failed")
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in pending:
            log.warning("consumer did not finish in time, cancelling", task=task.get_name())
            task.cancel()
        await asyncio.gather(*tasks, stopped, return_exceptions=True)
        return 1 if failed else 0
