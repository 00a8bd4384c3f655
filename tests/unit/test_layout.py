"""The layout docs/architecture.md describes holds: a process package never imports
another, and none imports the command (`cli`) or the development environment
(`devenv`), so shipping a process never ships the machinery that installs Kafka."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("api", "relay", "consumers")
TOOLING = ("cli", "devenv")


def imported_packages(folder: str) -> set[tuple[str, str]]:
    """(module path, top-level package) of every import under `folder`."""
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {(path.relative_to(ROOT).as_posix(), name.split(".")[0]) for name in names}
    return found


@pytest.mark.parametrize("folder", [*PROCESSES, "core"])
def test_processes_and_core_import_no_other_process_nor_tooling(folder: str) -> None:
    forbidden = {*PROCESSES, *TOOLING} - {folder}
    assert {(path, top) for path, top in imported_packages(folder) if top in forbidden} == set()


def test_devenv_imports_no_process_nor_the_command() -> None:
    forbidden = {*PROCESSES, "cli"}
    assert {(path, top) for path, top in imported_packages("devenv") if top in forbidden} == set()
