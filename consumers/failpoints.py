"""Crash points for the consumers' kill -9 tests, like the relay's RELAY_FAILPOINT:
CONSUMER_FAILPOINT="mid_batch:<probability>" makes the process SIGKILL itself after a
record's handlers ran in the middle of a multi-record batch, before its commit, so
that window is exercised on purpose. Unset in production: one comparison per record.
"""

from __future__ import annotations

import os
import random
import signal

import structlog

log = structlog.get_logger(__name__)

POINTS = ("mid_batch",)


class Failpoints:
    def __init__(self, spec: str) -> None:
        self.point = ""
        self.probability = 0.0
        if spec:
            point, _, probability = spec.partition(":")
            if point not in POINTS:
                raise ValueError(
                    f"CONSUMER_FAILPOINT names unknown point {point!r}; one of {POINTS}"
                )
            self.point = point
            self.probability = float(probability or "1")

    def hit(self, point: str, **where: object) -> None:
        if point == self.point and random.random() < self.probability:
            log.warning("failpoint reached, killing the process", point=point, **where)
            os.kill(os.getpid(), signal.SIGKILL)
