"""`StatusCollector`: the one place that takes an operator's status snapshot.

Used by `connectin status`, the API's /ops endpoints and its Prometheus collector.
Each part is read independently, so Kafka being down still shows the outbox (and
vice versa); a part that fails is named in `errors` and the verdict is "unknown".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

from confluent_kafka import KafkaException
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db_errors import DATABASE_ERRORS
from core.retry import first_line
from core.settings import Settings
from core.status.consumer_lag import ConsumerLagReader
from core.status.model import (
    ConsumersStatus,
    DeadLetterStatus,
    Finding,
    OutboxStatus,
    StatusSnapshot,
)
from core.status.outbox import read_dead_letters, read_outbox
from core.status.verdict import (
    consumer_findings,
    dead_letter_findings,
    outbox_findings,
    thresholds_dict,
)

T = TypeVar("T")

# What a store failing looks like: any database error, transient or not (a schema not
# migrated is something to show the operator too), SQLAlchemy's own, and librdkafka's.
# Anything else is a bug and propagates.
UNREACHABLE: tuple[type[BaseException], ...] = (
    *DATABASE_ERRORS,
    SQLAlchemyError,
    KafkaException,
)


class StatusUnavailable(RuntimeError):
    """A part of the status could not be read (its store failed or is unreachable)."""


def _reason(exc: BaseException) -> str:
    # SQLAlchemy prefixes the driver's message with its own class path; the driver's
    # own exception (asyncpg's) says it plainly.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = getattr(exc.orig, "__cause__", None) or exc.orig
    return first_line(exc)


class StatusCollector:
    def __init__(self, settings: Settings, engine: AsyncEngine, *, timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._engine = engine
        # Bounds each part: a blackholed Postgres would otherwise hold a health probe
        # for asyncpg's 60 s connect timeout.
        self._timeout = timeout_s
        # Created on first use: building it does not connect, but the API should not
        # even start a librdkafka thread until an operator asks.
        self._lag_reader: ConsumerLagReader | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def outbox(self) -> OutboxStatus:
        return await self.guard("postgres", read_outbox(self._engine, self._settings))

    async def dead_letters(self) -> DeadLetterStatus:
        return await self.guard("postgres", read_dead_letters(self._engine))

    async def consumers(self) -> ConsumersStatus:
        if self._lag_reader is None:
            self._lag_reader = ConsumerLagReader(self._settings.kafka, timeout_s=self._timeout)
        return await self.guard("kafka", asyncio.to_thread(self._lag_reader.read))

    def findings(
        self,
        outbox: OutboxStatus | None = None,
        consumers: ConsumersStatus | None = None,
        dead_letters: DeadLetterStatus | None = None,
    ) -> list[Finding]:
        limits = self._settings.status
        found: list[Finding] = []
        if outbox is not None:
            found += outbox_findings(outbox, limits)
        if consumers is not None:
            found += consumer_findings(consumers, limits)
        if dead_letters is not None:
            found += dead_letter_findings(dead_letters)
        return found

    async def snapshot(self) -> StatusSnapshot:
        taken_at = datetime.now(UTC)
        outbox, consumers, dead_letters = await asyncio.gather(
            self.outbox(), self.consumers(), self.dead_letters(), return_exceptions=True
        )
        errors = [
            str(part)
            for part in (outbox, consumers, dead_letters)
            if isinstance(part, StatusUnavailable)
        ]
        for part in (outbox, consumers, dead_letters):
            # Only "unreachable" is expected; anything else is a bug, raise it.
            if isinstance(part, BaseException) and not isinstance(part, StatusUnavailable):
                raise part
        ob = outbox if isinstance(outbox, OutboxStatus) else None
        cs = consumers if isinstance(consumers, ConsumersStatus) else None
        dl = dead_letters if isinstance(dead_letters, DeadLetterStatus) else None
        return StatusSnapshot(
            taken_at=taken_at,
            outbox=ob,
            consumers=cs,
            dead_letters=dl,
            findings=tuple(self.findings(ob, cs, dl)),
            errors=tuple(dict.fromkeys(errors)),
            thresholds=thresholds_dict(self._settings.status),
        )

    async def guard(self, store: str, work: Awaitable[T]) -> T:
        """Await `work` (a read of `store`) within the timeout; a failing or silent store
        becomes StatusUnavailable with a one-line reason."""
        try:
            # A little over the Kafka request timeout, so librdkafka's own (clearer)
            # timeout error wins when it is Kafka that hangs.
            async with asyncio.timeout(self._timeout + 1):
                return await work
        except TimeoutError as exc:
            reason = _reason(exc) if str(exc) else f"no answer within {self._timeout + 1:g}s"
            raise StatusUnavailable(f"{store}: {reason}") from exc
        except UNREACHABLE as exc:
            raise StatusUnavailable(f"{store}: {_reason(exc)}") from exc
