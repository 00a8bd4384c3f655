"""How a consumer names an event's sequence against the last one it applied for the
key (consumers.inbox.classify): in line, a gap, a regression, or a late start."""

from __future__ import annotations

import pytest

from consumers.inbox import classify


@pytest.mark.parametrize(
    ("previous", "sequence", "anomaly"),
    [
        (None, 1, None),  # the key's first event, seen first
        (1, 2, None),
        (41, 42, None),
        (None, 2, "late_start"),  # the consumer started after the key's first event
        (None, 1_000, "late_start"),
        (1, 3, "gap"),  # event 2 never arrived (yet)
        (5, 100, "gap"),
        (5, 5, "regression"),  # the same sequence again: not in line either
        (5, 4, "regression"),
        (5, 1, "regression"),
    ],
)
def test_sequences_are_classified(previous: int | None, sequence: int, anomaly: str | None) -> None:
    assert classify(previous, sequence) == anomaly


def test_only_the_next_sequence_is_in_line() -> None:
    """Around any previous sequence, exactly one successor is in line."""
    for previous in (1, 2, 7, 2**40):
        in_line = [s for s in range(previous - 3, previous + 4) if classify(previous, s) is None]
        assert in_line == [previous + 1]
