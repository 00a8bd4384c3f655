"""What the payments and subscriptions tables have in common: a Stripe id, an owner,
a status moved by Stripe's events (`status_event_created` is the `created` of the last
event applied) and the API's idempotency key.

Inserts use ON CONFLICT DO NOTHING: the API and the payment consumer may both record
the same object (a webhook can arrive before the API's commit), and a duplicate key is
possible after an idempotency claim was taken over (api/payments/claims.py). The loser
finds the winner's row instead of an error. Rows the consumer moves are read FOR
UPDATE, so events of one object arriving under different keys (its own, and its
invoice's subscription) apply one after the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core.stripe.lifecycle import Lifecycle
from core.tables import Payment, Subscription


@dataclass(frozen=True)
class LockedRow:
    id: int
    user_id: int
    status: str
    status_event_created: int | None


@dataclass(frozen=True)
class StripeRows:
    model: type[Payment] | type[Subscription]
    stripe_id: InstrumentedAttribute[str]
    lifecycle: Lifecycle

    async def insert(self, session: AsyncSession, values: dict[str, Any]) -> int | None:
        """The new row's id, or None when its Stripe id or key is already recorded."""
        inserted: int | None = await session.scalar(
            insert(self.model).values(**values).on_conflict_do_nothing().returning(self.model.id)
        )
        return inserted

    async def count_finished(
        self, session: AsyncSession, user_id: int, *alike: ColumnElement[bool]
    ) -> int:
        """How many of the user's objects like these reached a finished state."""
        count = await session.scalar(
            select(func.count())
            .select_from(self.model)
            .where(
                self.model.user_id == user_id,
                self.model.status.in_(self.lifecycle.finished),
                *alike,
            )
        )
        return int(count or 0)

    async def adopt_key(self, session: AsyncSession, stripe_id: str, key: str) -> None:
        """The payment consumer recorded this object from a webhook before the API's
        insert: give its row the API's key, so the next retry finds it."""
        await session.execute(
            update(self.model)
            .where(self.stripe_id == stripe_id, self.model.idempotency_key.is_(None))
            .values(idempotency_key=key)
        )

    async def lock(self, session: AsyncSession, stripe_id: str) -> LockedRow | None:
        m = self.model
        row = (
            await session.execute(
                select(m.id, m.user_id, m.status, m.status_event_created)
                .where(self.stripe_id == stripe_id)
                .with_for_update()
            )
        ).one_or_none()
        return None if row is None else LockedRow(*row)

    async def move(
        self, session: AsyncSession, row_id: int, status: str, created: int, **values: Any
    ) -> None:
        """Apply an event's state (and any other columns it sets) to a locked row."""
        await session.execute(
            update(self.model)
            .where(self.model.id == row_id)
            .values(status=status, status_event_created=created, updated_at=func.now(), **values)
        )
