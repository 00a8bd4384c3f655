"""Idempotency claims: a Stripe write's key is claimed in Postgres, with a hash of the
normalised request, and committed *before* Stripe is called.

* The first request inserts the claim (unique key) and owns it: it alone calls
  Stripe. It records the result on the claim in the same transaction as its rows and
  outbox event (`complete`).
* Another request with the same key and a different request hash gets a 409 at once,
  whether the claim is in flight or done.
* One with the same hash waits for the owner (polling, up to `WAIT_S`) and answers
  with the recorded result: never a second Stripe call. Still in flight after
  `WAIT_S`: 409 "in progress" with Retry-After, as Stripe itself answers.
* The rule for failures: when the owner's Stripe call or its writes fail, the owner
  deletes the claim (`release`) before answering, so the client's retry claims the
  key afresh and calls Stripe again with the same Stripe idempotency key (Stripe
  then returns the object it may have created, or the same error). An owner that
  dies without releasing (kill -9, lost database) leaves a claim that a request with
  the same hash takes over once it is `LEASE` old, longer than any owner can take
  (Stripe's timeout 20 s x 3 attempts for each of up to four calls).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ConflictError
from core.tables import IdempotencyClaim

log = structlog.get_logger(__name__)

T = TypeVar("T")

LEASE = timedelta(seconds=300)
WAIT_S = 30.0
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.5

MISMATCH = "Idempotency-Key was already used with another request"
IN_PROGRESS = "a request with this Idempotency-Key is still in progress, retry shortly"


def request_hash(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """Held by this request: it calls Stripe, then completes or releases."""

    key: str
    owner: uuid.UUID


@dataclass(frozen=True)
class Done:
    """The key's write was recorded by an earlier or concurrent request."""

    result: dict[str, Any]


async def _try_claim(
    session: AsyncSession, key: str, operation: str, digest: str
) -> Claim | Row[tuple[str, dict[str, Any] | None]] | None:
    """Our new claim; else (hash, result) of the claim that stands, None if it was
    released meanwhile."""
    owner = uuid.uuid4()
    taken = await session.scalar(
        insert(IdempotencyClaim)
        .values(key=key, operation=operation, request_hash=digest, owner=owner)
        .on_conflict_do_update(
            index_elements=[IdempotencyClaim.key],
            set_={"owner": owner, "claimed_at": func.now()},
            # Take over only an abandoned claim of the same request.
            where=(
                IdempotencyClaim.result.is_(None)
                & (IdempotencyClaim.request_hash == digest)
                & (IdempotencyClaim.claimed_at < func.now() - LEASE)
            ),
        )
        .returning(IdempotencyClaim.owner)
    )
    if taken is not None:
        await session.commit()
        return Claim(key, owner)
    standing = (
        await session.execute(
            select(IdempotencyClaim.request_hash, IdempotencyClaim.result).where(
                IdempotencyClaim.key == key
            )
        )
    ).one_or_none()
    await session.rollback()
    return standing


async def claim(session: AsyncSession, key: str, operation: str, digest: str) -> Claim | Done:
    """Own the key (then call Stripe) or get the recorded result; 409 when the key was
    claimed for another request or stays in progress. Ends the session's transaction
    (the claim is committed), so call it before anything that must stay uncommitted."""
    await session.rollback()
    deadline = time.monotonic() + WAIT_S
    pause = FIRST_POLL_S
    while True:
        outcome = await _try_claim(session, key, operation, digest)
        if isinstance(outcome, Claim):
            return outcome
        if outcome is not None:
            if outcome.request_hash != digest:
                raise ConflictError(detail=MISMATCH)
            if outcome.result is not None:
                return Done(outcome.result)
            if time.monotonic() >= deadline:
                raise ConflictError(detail=IN_PROGRESS, headers={"Retry-After": "1"})
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)


async def complete(session: AsyncSession, held: Claim, result: dict[str, Any]) -> None:
    """Record the result in the session's transaction, with the rows it describes."""
    updated = await session.scalar(
        update(IdempotencyClaim)
        .where(IdempotencyClaim.key == held.key, IdempotencyClaim.owner == held.owner)
        .values(result=result, completed_at=func.now())
        .returning(IdempotencyClaim.key)
    )
    if updated is None:
        # Taken over after LEASE: the rows' own unique keys still keep one answer.
        log.warning("idempotency claim was taken over before completion", key=held.key)


async def settle(session: AsyncSession, held: Claim, write: Awaitable[T]) -> T:
    """The owner's part: run `write` (Stripe, then the rows, their event and `complete`)
    and commit it here rather than in the request's session provider, so that a failure
    anywhere, the commit included, releases the claim before the error is answered."""
    try:
        answer = await write
        await session.commit()
    except BaseException:
        await release(session, held)
        raise
    return answer


async def release(session: AsyncSession, held: Claim) -> None:
    """Drop a claim whose write failed, so a retry may try again (see the rule above)."""
    await session.rollback()
    await session.execute(
        delete(IdempotencyClaim).where(
            IdempotencyClaim.key == held.key,
            IdempotencyClaim.owner == held.owner,
            IdempotencyClaim.result.is_(None),
        )
    )
    await session.commit()
