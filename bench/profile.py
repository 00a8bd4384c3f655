"""Sampling profiles of a running process with py-spy (`record --gil -f raw`: only
samples where the process holds the GIL, i.e. where its Python CPU goes), summarized
as the share of samples whose stack passes through each frame.

    python -m bench profile-summary /tmp/out.txt      (summarize any raw py-spy file)
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).parent / "py-spy")
# The process's entry chain: in every sample, says nothing.
ROOT_FRAMES = re.compile(
    r"\((typer|_?click)/|\((asyncio/runners|uvicorn/(main|server|_compat))\.py|cli/main|<module>"
)
# Where the API's time goes, by the frames that mark each part. The write route runs
# on a bare asyncpg connection (core.db.raw_connection): its pool checkout and return,
# the id drawn first, then the one statement of project and event, in which the
# event's rendering is a part of its own.
API_MARKERS: dict[str, tuple[str, ...]] = {
    "jwt_auth": ("authenticate_request",),
    "connection_checkout_and_return": ("raw_connection (core/db.py",),
    "project_id_nextval": ("Connection.fetchval (",),
    "project_and_outbox_statement": ("insert_with_event (core/outbox.py",),
    "event_render": ("_outbox_values (core/outbox.py",),
    "litestar_dependency_resolution": ("resolve_dependencies",),
    "response_send": ("RequestResponseCycle.send",),
}


def _frame(raw: str) -> str:
    """`func (pkg/module.py:123)` -> `func (pkg/module.py)`: lines split a function."""
    return re.sub(r"\((?:.*/)?([^/]+/[^/:]+)(?::\d+)?\)$", r"(\1)", raw)


Markers = dict[str, tuple[str, ...]]


def summarize(path: Path, markers: Markers | None = None, top: int = 30) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    marked: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
        for label, needles in (markers or {}).items():
            if any(needle in f for f in frames for needle in needles):
                marked[label] += n

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "marked_percent": {label: pct(marked[label]) for label in markers or {}},
        "inclusive_percent": [
            [pct(n), f] for f, n in inclusive.most_common() if not ROOT_FRAMES.search(f)
        ][:top],
        "self_percent": [[pct(n), f] for f, n in own.most_common(15)],
    }


async def profile_process(
    pid: int, name: str, seconds: int = 6, markers: Markers | None = None
) -> dict[str, Any]:
    """Record `seconds` of `pid` and summarize; a missing or unusable py-spy (not
    installed, no ptrace permission) is reported in the result, not raised: the
    figures stand alone."""
    if shutil.which(PY_SPY) is None:
        return {"skipped": f"py-spy is not installed ({PY_SPY}); `pip install py-spy` to profile"}
    out = Path(tempfile.gettempdir()) / f"connectin-profile-{name}-{pid}.txt"
    proc = await asyncio.create_subprocess_exec(
        PY_SPY, "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o", str(out),
        "--gil", "--nonblocking", "--subprocesses",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return {"error": f"py-spy exited {proc.returncode}: {err.decode()[-300:]}"}
    return {
        "command": f"py-spy record -p <{name} pid> -d {seconds} -f raw --gil --nonblocking"
        " --subprocesses",
        "raw_file": str(out),
        **summarize(out, API_MARKERS if markers is None else markers),
    }
