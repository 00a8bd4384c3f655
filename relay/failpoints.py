"""Crash points for the kill -9 tests: RELAY_FAILPOINT makes the relay signal itself
when it passes a point, so every window between Kafka and Postgres (before produce,
mid-batch, after commit before the mark, after a commit while the previous batch's mark
is still running, during recovery) is exercised on purpose rather than by luck. Unset
in production: one string compare.

    RELAY_FAILPOINT="<point>[:<probability>[:<signal>[:<seed>]]]"

`signal` is SIGKILL (a crash, the default) or SIGTERM (a stop that provably arrives
with a batch in flight); `seed` makes the random draws repeatable, so a failing crash
run can be replayed with the seed its test printed.
"""

from __future__ import annotations

import os
import random
import signal

POINTS = ("before_produce", "mid_batch", "after_commit", "mark_overlap", "during_recovery")
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}


class Failpoints:
    def __init__(self, spec: str) -> None:
        self.point = ""
        self.probability = 0.0
        self.signal = signal.SIGKILL
        self._random = random.Random()
        if not spec:
            return
        point, probability, sig, seed, *rest = [*spec.split(":"), "", "", "", ""]
        if point not in POINTS or any(rest):
            raise ValueError(
                f"RELAY_FAILPOINT={spec!r}: expected <point>[:<probability>[:<signal>[:<seed>]]]"
                f" with a point of {POINTS}"
            )
        if sig and sig not in SIGNALS:
            raise ValueError(f"RELAY_FAILPOINT={spec!r}: signal must be one of {tuple(SIGNALS)}")
        self.point = point
        self.probability = float(probability or "1")
        self.signal = SIGNALS[sig or "SIGKILL"]
        if seed:
            self._random.seed(int(seed))

    def hit(self, point: str) -> None:
        if point == self.point and self._random.random() < self.probability:
            os.kill(os.getpid(), self.signal)
