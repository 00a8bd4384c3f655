"""How every retry loop waits, and how it names the error it waits out.

Which failures deserve another attempt is core/db_errors.py's `is_transient`; this
module says how long to wait before it. Delays grow exponentially up to a cap and are
jittered: the shards of a relay, or the workers of a consumers process, that met the
same outage at the same instant would otherwise retry in lockstep and hit a
recovering Postgres or broker all together, again and again.
"""

from __future__ import annotations

import random

# Exponent bound: far past any cap, and 2.0 ** 64 is still a float.
_MAX_DOUBLINGS = 64


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (drivers append whole statements and
    hints below it), or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """The wait after failed attempt `attempt` (1, 2, 3...): base, 2x base, 4x base...
    at most `cap_s`, then shortened by a random fraction of up to `jitter` of itself,
    so it never exceeds the exponential value and never falls below (1 - jitter) of it."""
    if base_s < 0 or cap_s < 0:
        raise ValueError(f"backoff base and cap must be >= 0, got {base_s} and {cap_s}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"backoff jitter must be within [0, 1], got {jitter}")
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    delay = min(base_s * 2.0**doublings, cap_s)
    draw = (rng or random).random()
    return delay * (1 - jitter * draw)


class Backoff:
    """The delays of one retry loop: `next()` after each failure, `reset()` after a
    success."""

    def __init__(
        self,
        base_s: float,
        cap_s: float,
        *,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        # Checked here, not at the first failure, which may come long after start-up.
        backoff_s(1, base_s=base_s, cap_s=cap_s, jitter=jitter, rng=rng)
        self._base_s = base_s
        self._cap_s = cap_s
        self._jitter = jitter
        self._rng = rng
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return backoff_s(
            self.failures,
            base_s=self._base_s,
            cap_s=self._cap_s,
            jitter=self._jitter,
            rng=self._rng,
        )

    def reset(self) -> None:
        self.failures = 0
