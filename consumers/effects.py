"""Writes that handlers leave to the end of their batch's transaction, so a batch pays
one set-based statement for each kind instead of one per record.

Counters matter most: batches of different partitions (and of other consumer
processes) run side by side, and per-record `UPDATE users SET n = n + 1` would lock
the same rows in different orders, i.e. deadlock. Here every batch locks its counter
rows in id order (`core.stores.users.add_to_counters`), once, just before it commits.
A row that does not exist is the event's fault: the first record that named it fails
with InvalidEvent.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from consumers.registry import InvalidEvent
from core.stores import notifications, users
from core.stores.users import UserCounter


class EffectFailed(Exception):
    """A deferred write failed because of the record at `index` of the batch."""

    def __init__(self, index: int, cause: InvalidEvent) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


@dataclass
class _Notification:
    index: int
    user_id: int
    kind: str
    title: str
    data: str
    source_event_id: uuid.UUID


@dataclass
class Effects:
    """One batch's deferred writes; `index` is the record's position in the batch."""

    _notifications: list[_Notification] = field(default_factory=list)
    # column -> user id -> (delta, first record index that named it)
    _counters: dict[UserCounter, dict[int, list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def notify(
        self,
        index: int,
        user_id: int,
        kind: str,
        title: str,
        data: dict[str, Any],
        source_event_id: uuid.UUID,
    ) -> None:
        self._notifications.append(
            _Notification(index, user_id, kind, title, json.dumps(data), source_event_id)
        )

    def count(self, index: int, column: UserCounter, user_id: int, delta: int = 1) -> None:
        entry = self._counters[column].setdefault(user_id, [0, index])
        entry[0] += delta

    async def flush(self, session: AsyncSession) -> None:
        """Write everything; EffectFailed names the first record whose user is missing."""
        failures: list[tuple[int, str]] = []
        if self._notifications:
            pending = self._notifications
            found = await notifications.insert_many(
                session,
                user_ids=[n.user_id for n in pending],
                kinds=[n.kind for n in pending],
                titles=[n.title for n in pending],
                data=[n.data for n in pending],
                event_ids=[n.source_event_id for n in pending],
            )
            failures += [
                (n.index, f"user {n.user_id} does not exist")
                for n in pending
                if n.user_id not in found
            ]
        for column, by_user in sorted(self._counters.items()):
            ids = sorted(by_user)
            found = await users.add_to_counters(session, column, ids, [by_user[i][0] for i in ids])
            failures += [(by_user[i][1], f"user {i} does not exist") for i in ids if i not in found]
        if failures:
            index, reason = min(failures)
            raise EffectFailed(index, InvalidEvent(reason))
