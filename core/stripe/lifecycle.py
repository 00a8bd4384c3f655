"""The status lifecycles of payments and subscriptions: which state may replace which.

Stripe neither orders its deliveries nor sends each once, so no event may move an
object backwards (architecture invariant 5). `Lifecycle.supersedes` decides whether an
event's state replaces the stored one:
- a finished state (succeeded, canceled, ...) is final: Stripe never leaves one;
- a finished state replaces any unfinished one, however late it arrives;
- otherwise the newer event wins by Stripe's `created`, and within the same second
  (`created` has whole seconds) the state further along the lifecycle wins;
- a row the API wrote has no event time yet: only a state at least as far along
  replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SUCCEEDED = "succeeded"
ACTIVE = "active"


@dataclass(frozen=True)
class Lifecycle:
    ranks: Mapping[str, int]
    # States after which Stripe never changes the object again.
    finished: frozenset[str]

    def rank(self, status: str) -> int:
        # A status Stripe adds later counts as the start: it never outranks a known one.
        return self.ranks.get(status, 0)

    def supersedes(
        self, current: str, current_created: int | None, new: str, new_created: int
    ) -> bool:
        if current in self.finished:
            # Only the first event confirming a finished state the API recorded without
            # an event time still applies (it stamps the time, and may emit effects).
            return current_created is None and new == current
        if new in self.finished:
            return True
        if current_created is None:
            return self.rank(new) >= self.rank(current)
        if new_created != current_created:
            return new_created > current_created
        return self.rank(new) > self.rank(current)


PAYMENT = Lifecycle(
    ranks={
        "requires_payment_method": 0,
        "requires_confirmation": 1,
        "requires_action": 2,
        "processing": 3,
        "requires_capture": 4,
        SUCCEEDED: 5,
        "canceled": 5,
    },
    finished=frozenset({SUCCEEDED, "canceled"}),
)
SUBSCRIPTION = Lifecycle(
    ranks={
        "incomplete": 0,
        "trialing": 1,
        ACTIVE: 2,
        "past_due": 3,
        "unpaid": 4,
        "paused": 4,
        "incomplete_expired": 5,
        "canceled": 5,
    },
    finished=frozenset({"canceled", "incomplete_expired"}),
)
# A paid invoice activates a subscription waiting for that payment.
ACTIVATED_BY_PAYMENT = frozenset({"incomplete", "past_due", "unpaid"})
