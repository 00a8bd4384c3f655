"""Crash points for the kill -9 tests: RELAY_FAILPOINT="<point>:<probability>" makes
the relay SIGKILL itself when it passes <point>, so every window between Kafka and
Postgres (before produce, mid-batch, after commit before the mark, during recovery)
is exercised on purpose rather than by luck. Unset in production: one string compare.
"""

from __future__ import annotations

import os
import random
import signal

POINTS = ("before_produce", "mid_batch", "after_commit", "during_recovery")


class Failpoints:
    def __init__(self, spec: str) -> None:
        self.point = ""
        self.probability = 0.0
        if spec:
            point, _, probability = spec.partition(":")
            if point not in POINTS:
                raise ValueError(f"RELAY_FAILPOINT names unknown point {point!r}; one of {POINTS}")
            self.point = point
            self.probability = float(probability or "1")

    def hit(self, point: str) -> None:
        if point == self.point and random.random() < self.probability:
            os.kill(os.getpid(), signal.SIGKILL)
