"""docs/architecture.md is the design of record: the invariants the code cites exist there,
the tests it names as proof exist, and nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO as ROOT

DOC = ROOT / "docs" / "architecture.md"
SOURCES = ("api", "relay", "consumers", "core", "cli", "devenv", "bench", "tests")


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


# A Markdown document named by its path from a folder, or by a bare upper-case name.
MARKDOWN_NAME = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.md|[A-Z][A-Z_]*\.md)\b")
CLIMBS_OUT = re.compile(r"(?<![\w.])\.\./")


def test_nothing_points_outside_the_repository() -> None:
    """Every Markdown document the code, README or docs name is in this repository, and
    no path climbs out of it: the design of record lives here."""
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *_sources()]
    present = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    missing, climbing = [], []
    for path in texts:
        text = path.read_text()
        for name in MARKDOWN_NAME.findall(text):
            found = (ROOT / name).is_file() or (path.parent / name).is_file()
            if not found and ("/" in name or name not in present):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
        if CLIMBS_OUT.search(text):
            climbing.append(str(path.relative_to(ROOT)))
    assert missing == []
    assert climbing == []
