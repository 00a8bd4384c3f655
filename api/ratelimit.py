"""Login throttling shared by every API worker and process: the budgets live in
Postgres (`login_throttle`), so N processes give no more attempts than one.

Two budgets, each checked on every attempt: one per account (the normalised login
name, whatever address the attempts come from) and one per client address (whatever
accounts it tries; see api/client_address.py for what the address is). Each is a
GCRA, a token bucket kept as a single timestamp per key (the "theoretical arrival
time"): a key may spend `limit` attempts at once, then one every `60 / limit`
seconds. One upsert per budget reads, checks and spends atomically, so concurrent
attempts can never overdraw it. Both run in one transaction, address first (a fixed
order, so two attempts cannot deadlock); a refusal rolls the transaction back, so a
refused attempt spends nothing and an attacker hammering an account does not keep
its owner out longer than the attacker's own budget allows.

Every attempt also purges up to `PURGE_BATCH` rows whose time has passed (a full
budget, the same as no row). Each attempt adds at most two rows, so the table holds
little more than the keys active in the last minute, however many addresses an
attacker uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PERIOD_S = 60.0
PURGE_BATCH = 100
# Float sums of the emission interval must not refuse the limit-th attempt.
EPSILON_S = 1e-6

# EXCLUDED.tat is now + interval: the new time is max(tat, now) + interval, spent
# only while the stored time is at most `burst` ahead of now.
_SPEND = text(
    """
    INSERT INTO login_throttle (scope, key, tat)
    VALUES (:scope, :key, CAST(:now AS float8) + CAST(:interval AS float8))
    ON CONFLICT (scope, key) DO UPDATE
        SET tat = greatest(login_throttle.tat + CAST(:interval AS float8), EXCLUDED.tat)
        WHERE login_throttle.tat <= CAST(:now AS float8) + CAST(:burst AS float8)
    RETURNING tat
    """
)
_TAT = text("SELECT tat FROM login_throttle WHERE scope = :scope AND key = :key")
_PURGE = text(
    """
    DELETE FROM login_throttle WHERE (scope, key) IN (
        SELECT scope, key FROM login_throttle WHERE tat < CAST(:now AS float8)
        ORDER BY tat LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)


class LoginThrottle:
    def __init__(
        self,
        per_account: int,
        per_address: int,
        *,
        period_s: float = PERIOD_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.period_s = period_s
        # Wall-clock seconds: the stored times are compared across processes.
        self._clock = clock

    async def _spend(
        self, conn: AsyncConnection, scope: str, key: str, limit: int, now: float
    ) -> int | None:
        interval = self.period_s / limit
        burst = self.period_s - interval + EPSILON_S
        params = {"scope": scope, "key": key, "now": now, "interval": interval, "burst": burst}
        if (await conn.execute(_SPEND, params)).first() is not None:
            return None
        tat = float((await conn.execute(_TAT, params)).scalar_one())
        return max(1, math.ceil(tat - now - burst))

    async def hit(self, engine: AsyncEngine, *, account: str, address: str) -> int | None:
        """Spend one attempt of both budgets: None when allowed, else the seconds to
        wait (Retry-After). Committed on its own, whatever the login's outcome."""
        now = self._clock()
        async with engine.connect() as conn:
            for scope, key, limit in (
                ("address", address, self.per_address),
                ("account", account, self.per_account),
            ):
                retry_after = await self._spend(conn, scope, key, limit, now)
                if retry_after is not None:
                    await conn.rollback()
                    return retry_after
            await conn.execute(_PURGE, {"now": now, "batch": PURGE_BATCH})
            await conn.commit()
        return None
