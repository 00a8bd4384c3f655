"""How long to wait before another attempt (which failures deserve one: core/db_errors.py)."""

from __future__ import annotations

MAX_BACKOFF_S = 30.0
MAX_UNAVAILABLE_BACKOFF_S = 5.0


def backoff_s(base_ms: int, attempt: int, cap_s: float = MAX_BACKOFF_S) -> float:
    """Exponential: base, 2x base, 4x base, ... after attempts 1, 2, 3, ..."""
    return float(min(base_ms / 1000 * 2 ** max(attempt - 1, 0), cap_s))
