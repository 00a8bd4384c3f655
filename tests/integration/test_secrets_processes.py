"""Production refuses the published and short secrets: every process exits 2 with one
line naming the variable, before it connects to anything (so nothing is written)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import TEST, Settings
from tests.support import REPO as ROOT
from tests.support.api import row_counts

SECRETS = ("JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "OPS_TOKEN")


def _production_env(settings: Settings) -> dict[str, str]:
    """The test database and topics, production, and every secret at its default."""
    env = {k: v for k, v in os.environ.items() if k not in (*SECRETS, "CONNECTIN_ENV")}
    env.update(settings.to_env())
    for name in (*SECRETS, "CONNECTIN_ENV"):
        env.pop(name)
    env["OPS_TOKEN"] = "dev-ops-token"
    return env


BIN = Path(sys.executable).parent
PROCESSES = {
    "connectin api": [str(BIN / "connectin"), "api", "--port", "0"],
    "connectin relay": [str(BIN / "connectin"), "relay"],
    "connectin consumers": [str(BIN / "connectin"), "consumers"],
    "connectin up": [str(BIN / "connectin"), "up"],
    "python -m relay": [sys.executable, "-m", "relay"],
    "python -m consumers": [sys.executable, "-m", "consumers"],
}


@pytest.mark.parametrize("process", list(PROCESSES))
async def test_every_process_refuses_the_defaults_with_exit_2_and_one_line(
    settings: Settings, clean_db: AsyncEngine, process: str
) -> None:
    before = await row_counts(clean_db)
    proc = await asyncio.create_subprocess_exec(
        *PROCESSES[process],
        env=_production_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    stderr = err.decode()
    assert proc.returncode == 2, stderr
    assert out == b""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for name in SECRETS:
        assert f"{name} is a published default" in lines[0]
    # It stopped before touching anything: no migration, no row, no outbox event.
    assert await row_counts(clean_db) == before


def test_the_same_processes_start_in_test(settings: Settings) -> None:
    """The check is what stopped them: with CONNECTIN_ENV=test the relay runs."""
    env = {**_production_env(settings), "CONNECTIN_ENV": TEST}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert '"process": "relay"' in first, first
    finally:
        proc.terminate()
        proc.wait(30)
