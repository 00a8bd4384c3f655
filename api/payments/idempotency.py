"""Idempotency keys for every Stripe write.

The client's `Idempotency-Key` header when it sends one, else a key derived from the
request, so a retried request (lost response, double click, proxy retry) never
creates a second Stripe object. Either way the key is namespaced by operation and
user before it reaches Stripe: Stripe keys are per account, so user A's "abc" must
not return user B's object.

A derived key also carries a `generation`: how many of the user's earlier objects for
the same request already finished (a succeeded or canceled payment of that amount, a
canceled subscription to that price). A retry of a request whose answer was lost
finds its object unfinished (nobody could confirm an intent they never received), so
it gets the same key and the same object; a deliberate second purchase after the
first one finished gets a new key and a new object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from litestar.params import HeaderParameter

from api.bodies import anchored

HEADER = "Idempotency-Key"

ClientKey = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        required=False,
        min_length=1,
        max_length=255,
        pattern=anchored(r"[\x21-\x7e]+"),
        description="optional; a retry with the same key returns the same Stripe object",
    ),
]


def _digest(parts: dict[str, Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return "ci_" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyKey:
    value: str
    from_client: bool

    def step(self, name: str) -> str:
        """The key of one write of a multi-write operation: Stripe rejects a key reused
        with other parameters, so each write gets its own, derived from this one."""
        return _digest({"key": self.value, "step": name})


def idempotency_key(
    operation: str,
    user_id: int,
    client_key: str | None,
    request: dict[str, Any],
    generation: int = 0,
) -> IdempotencyKey:
    if client_key is not None:
        return IdempotencyKey(
            _digest({"op": operation, "user": user_id, "client": client_key}), from_client=True
        )
    return IdempotencyKey(
        _digest({"op": operation, "user": user_id, "request": request, "gen": generation}),
        from_client=False,
    )
