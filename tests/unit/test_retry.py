"""core/retry.py: the one backoff and the one first_line every retry loop uses."""

from __future__ import annotations

import random

import pytest

from core.retry import Backoff, backoff_s, first_line


def test_delays_double_from_the_base_up_to_the_cap_without_jitter() -> None:
    delays = [backoff_s(n, base_s=0.1, cap_s=1.0, jitter=0) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_jitter_shortens_each_delay_by_at_most_its_fraction() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        full = min(0.05 * 2 ** (attempt - 1), 5.0)
        for _ in range(200):
            delay = backoff_s(attempt, base_s=0.05, cap_s=5.0, jitter=0.5, rng=rng)
            assert full * 0.5 <= delay <= full


def test_jitter_spreads_loops_that_failed_together() -> None:
    rng = random.Random(3)
    delays = {backoff_s(4, base_s=0.1, cap_s=10.0, rng=rng) for _ in range(50)}
    assert len(delays) > 40


def test_a_long_outage_neither_overflows_nor_passes_the_cap() -> None:
    assert backoff_s(10_000, base_s=0.1, cap_s=5.0, jitter=0) == 5.0


@pytest.mark.parametrize(
    ("base_s", "cap_s", "jitter"), [(-1.0, 1.0, 0.5), (0.1, -1.0, 0.5), (0.1, 1.0, 1.5)]
)
def test_a_nonsensical_backoff_is_refused_when_built(
    base_s: float, cap_s: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base_s, cap_s, jitter=jitter)


def test_backoff_counts_failures_and_starts_over_after_a_success() -> None:
    backoff = Backoff(0.05, 5.0, jitter=0)
    assert [backoff.next() for _ in range(3)] == pytest.approx([0.05, 0.1, 0.2])
    assert backoff.failures == 3
    backoff.reset()
    assert backoff.next() == pytest.approx(0.05)


def test_first_line_keeps_the_message_and_drops_what_drivers_append() -> None:
    error = RuntimeError("  connection refused\nDETAIL: whole statement\nHINT: x  ")
    assert first_line(error) == "connection refused"


@pytest.mark.parametrize("message", ["", "   ", "\n"])
def test_first_line_of_an_error_without_message_is_its_type(message: str) -> None:
    assert first_line(TimeoutError(message)) == "TimeoutError"
