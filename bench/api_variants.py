"""The real API (`create_app(settings)`: same middleware, auth, DI, session, error
handlers) plus two benchmark-only variants of `POST /api/v1/projects`, so the three
write paths are measured in one process under the same conditions:

- `POST /api/v1/projects`            the real route: project row + outbox row, one commit.
- `POST /bench/projects/domain-only` the same handler without the outbox row.
- `POST /bench/projects/dual-write`  the original integration's approach: commit the
  project, then send the event to Kafka and await its delivery inside the request.

These variants exist only here; api/ is not changed. Run as a server:

    python -m bench.api_variants --port 8001    (uvicorn, one worker, like `connectin api`)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from datetime import UTC, datetime
from typing import cast

import msgspec
import uvicorn
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from litestar import Litestar, post
from litestar.datastructures import State
from litestar.params import JSONBody

from api import events
from api.app import create_app
from api.deps import StatementContext, StatementCtx
from api.fields import clean_text
from api.projects.schemas import ProjectIn, ProjectOut
from core.db import raw_connection
from core.envelope import event_key
from core.kafka import base_producer_config
from core.logging import configure_logging
from core.outbox import NewEvent
from core.settings import KafkaSettings, Settings
from core.stores.projects import insert_project
from core.tables import Project

DOMAIN_ONLY = "/bench/projects/domain-only"
DUAL_WRITE = "/bench/projects/dual-write"
# librdkafka's default is 300 s: with Kafka down every request would hang for five
# minutes. 5 s makes the dual write fail fast (a 500) instead; a longer timeout only
# holds requests (and their connections) longer, it loses the same events.
DUAL_WRITE_TIMEOUT_MS = 5000


class KafkaSender:
    """Awaitable single-message sends: confluent-kafka's produce() with a delivery
    callback resolving an asyncio future; a thread serves the callbacks (poll)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._producer = Producer(
            {
                # The durability the relay has (acks=all, idempotent), minus transactions.
                **base_producer_config(kafka),
                "compression.type": "lz4",
                "linger.ms": 2,
                "message.timeout.ms": DUAL_WRITE_TIMEOUT_MS,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dual-write-poll", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, event: NewEvent) -> None:
        """Until the broker acknowledged the message; KafkaException if it never did."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if delivered.done():
                return
            if err is None:
                delivered.set_result(None)
            else:
                delivered.set_exception(KafkaException(err))

        def on_delivery(err: KafkaError | None, _: Message) -> None:
            loop.call_soon_threadsafe(settle, err)

        # A project's creation is its first event.
        envelope, headers = event.render(datetime.now(UTC), sequence=1)
        self._producer.produce(
            event.topic,
            json.dumps(envelope.to_dict(), separators=(",", ":")).encode(),
            event_key(event.aggregate_type, event.aggregate_id).encode(),
            headers=list(headers.items()),
            on_delivery=on_delivery,
        )
        await delivered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._producer.flush(DUAL_WRITE_TIMEOUT_MS / 1000)


async def _project_row(ctx: StatementContext, data: ProjectIn) -> Project:
    """The real route's project row, by its statements minus the event."""
    async with raw_connection(ctx.engine) as conn:
        return await insert_project(
            conn,
            ctx.principal.id,
            clean_text("title", data.title),
            clean_text("description", data.description, allow_empty=True),
        )


@post(DOMAIN_ONLY, status_code=201, include_in_schema=False)
async def create_project_domain_only(
    data: JSONBody[ProjectIn], statement_ctx: StatementCtx
) -> ProjectOut:
    """The real handler minus the outbox row: the same statements without the event,
    the floor the outbox is measured against."""
    project = await _project_row(statement_ctx, data)
    return msgspec.convert(project, ProjectOut, from_attributes=True)


@post(DUAL_WRITE, status_code=201, include_in_schema=False)
async def create_project_dual_write(
    data: JSONBody[ProjectIn], statement_ctx: StatementCtx, state: State
) -> ProjectOut:
    """Commit the row as domain-only does, then send the event and await its delivery:
    a failed send is a 500 with the project already committed (its event lost), a
    crash between the two loses it silently."""
    ctx = statement_ctx
    project = await _project_row(ctx, data)
    sender = cast(KafkaSender, state.kafka_sender)
    await sender.send(events.project_created(ctx.settings.kafka.topics, project, ctx.traceparent))
    return msgspec.convert(project, ProjectOut, from_attributes=True)


def create_variant_app(settings: Settings) -> Litestar:
    app = create_app(settings)
    app.register(create_project_domain_only)
    app.register(create_project_dual_write)

    def start_sender(app: Litestar) -> None:
        app.state.kafka_sender = KafkaSender(settings.kafka)

    def stop_sender(app: Litestar) -> None:
        cast(KafkaSender, app.state.kafka_sender).close()

    app.on_startup.append(start_sender)
    app.on_shutdown.append(stop_sender)
    return app


def variant_app_from_env() -> Litestar:
    """One worker's app, as `api.app.app_from_env` for the real one."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, process="api")
    return create_variant_app(settings)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_variants")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # As `connectin api` runs the real one: uvicorn, its default loop/parser.
    uvicorn.run(
        "bench.api_variants:variant_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
