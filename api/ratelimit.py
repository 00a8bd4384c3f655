"""Login rate limit: a sliding window per (client ip, email), in process memory.

Keyed by the pair, not by ip alone, so one office behind a NAT does not lock itself
out, while guessing passwords for one account is capped at `limit` attempts a window
from each address. Every attempt counts, successful or not, because each one costs an
argon2 verification. The state is per process: with N api processes an address gets
at most N x limit attempts, which is the trade for needing no shared store.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, key: tuple[str, str]) -> int | None:
        """Record an attempt; None when allowed, else the seconds to wait (Retry-After)."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._sweep(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window_s - now))
        hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        # Bounded memory under a flood of distinct keys: drop idle keys, and if every
        # key is still active, the oldest half.
        stale = [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]
        for key in stale:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:
            for key in list(self._hits)[: self.max_keys // 2]:
                del self._hits[key]
