"""The crash tests' failpoints (RELAY_FAILPOINT, CONSUMER_FAILPOINT): a spec is parsed
or refused with the variable's name, and a process signals itself only at its point,
with its signal, as often as its probability says (repeatably with a seed). os.kill
is recorded here instead of delivered."""

from __future__ import annotations

import os
import signal

import pytest

from consumers.failpoints import Failpoints as ConsumerFailpoints
from relay.failpoints import POINTS as RELAY_POINTS
from relay.failpoints import Failpoints as RelayFailpoints


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []

    def kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))

    monkeypatch.setattr(os, "kill", kill)
    return sent


def test_an_empty_relay_spec_is_off(kills: list[tuple[int, int]]) -> None:
    points = RelayFailpoints("")
    for point in RELAY_POINTS:
        points.hit(point)
    assert points.point == "" and kills == []


@pytest.mark.parametrize(
    ("spec", "point", "probability", "sig"),
    [
        ("mid_batch", "mid_batch", 1.0, signal.SIGKILL),
        ("before_produce:0.25", "before_produce", 0.25, signal.SIGKILL),
        ("after_commit:1:SIGTERM", "after_commit", 1.0, signal.SIGTERM),
        ("during_recovery:0.5:SIGKILL:42", "during_recovery", 0.5, signal.SIGKILL),
        ("mid_batch::SIGTERM", "mid_batch", 1.0, signal.SIGTERM),
    ],
)
def test_relay_specs_are_parsed(spec: str, point: str, probability: float, sig: int) -> None:
    points = RelayFailpoints(spec)
    assert (points.point, points.probability, points.signal) == (point, probability, sig)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("nowhere", "expected <point>"),
        ("MID_BATCH", "expected <point>"),
        ("mid_batch:1:SIGKILL:7:extra", "expected <point>"),
        ("mid_batch:1:SIGHUP", "signal must be one of"),
        ("mid_batch:often", "could not convert"),
        ("mid_batch:1:SIGKILL:seed", "invalid literal"),
    ],
)
def test_bad_relay_specs_are_refused(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RelayFailpoints(spec)


def test_the_relay_signals_itself_only_at_its_point(kills: list[tuple[int, int]]) -> None:
    points = RelayFailpoints("after_commit:1:SIGTERM")
    for point in ("before_produce", "mid_batch", "during_recovery", "after_commit"):
        points.hit(point)
    assert kills == [(os.getpid(), signal.SIGTERM)]


def test_a_seed_replays_the_same_draws(kills: list[tuple[int, int]]) -> None:
    def pattern(spec: str) -> list[int]:
        points, hits = RelayFailpoints(spec), []
        for n in range(200):
            before = len(kills)
            points.hit("mid_batch")
            if len(kills) > before:
                hits.append(n)
        return hits

    first = pattern("mid_batch:0.3:SIGKILL:1234")
    assert first == pattern("mid_batch:0.3:SIGKILL:1234")
    assert 20 < len(first) < 100  # about 60 of 200 at p = 0.3
    assert first != pattern("mid_batch:0.3:SIGKILL:4321")


def test_probability_zero_never_fires(kills: list[tuple[int, int]]) -> None:
    points = RelayFailpoints("mid_batch:0")
    for _ in range(500):
        points.hit("mid_batch")
    assert kills == []


def test_consumer_specs_are_parsed_or_refused(kills: list[tuple[int, int]]) -> None:
    assert ConsumerFailpoints("").point == ""
    points = ConsumerFailpoints("mid_batch:0.01")
    assert (points.point, points.probability) == ("mid_batch", 0.01)
    assert ConsumerFailpoints("mid_batch").probability == 1.0
    with pytest.raises(ValueError, match="unknown point 'after_commit'"):
        ConsumerFailpoints("after_commit:1")
    with pytest.raises(ValueError):
        ConsumerFailpoints("mid_batch:sometimes")


def test_the_consumers_sigkill_themselves_at_their_point(kills: list[tuple[int, int]]) -> None:
    points = ConsumerFailpoints("mid_batch")
    points.hit("elsewhere", index=1)
    assert kills == []
    points.hit("mid_batch", index=1, batch_size=3)
    assert kills == [(os.getpid(), signal.SIGKILL)]
