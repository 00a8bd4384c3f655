"""docs/architecture.md is the design of record: the invariants the code cites exist there,
the tests it names as proof exist, and nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SOURCES = ("api", "relay", "consumers", "core", "cli", "bench", "tests")


def _sources() -> list[Path]:
    return [path for folder in SOURCES for path in (ROOT / folder).rglob("*.py")]


def _invariants() -> set[int]:
    return {int(n) for n in re.findall(r"^(\d+)\. \*\*", DOC.read_text(), flags=re.M)}


def test_every_cited_invariant_is_defined() -> None:
    defined = _invariants()
    assert defined == set(range(1, len(defined) + 1))
    cited = {
        (path.relative_to(ROOT).as_posix(), int(n))
        for path in _sources()
        for n in re.findall(r"architecture(?:\.md)?\s+invariant\s+(\d+)", path.read_text())
    }
    assert cited, "no module cites an invariant: the pattern is stale"
    assert {pair for pair in cited if pair[1] not in defined} == set()


def test_named_tests_exist() -> None:
    named = set(re.findall(r"`(tests/[\w/]+\.py)`", DOC.read_text()))
    assert named
    assert {name for name in named if not (ROOT / name).is_file()} == set()


def test_nothing_points_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    texts = [DOC, ROOT / "README.md", *(p for p in _sources() if p != here)]
    assert [
        p.name for p in texts if "DESIGN.md" in p.read_text() or "../shared" in p.read_text()
    ] == []
