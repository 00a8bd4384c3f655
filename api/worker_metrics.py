"""The directory where `connectin api --workers N` has its workers keep their HTTP
metrics, so that `/metrics`, answered by whichever worker a scrape reaches, adds every
worker's counts up (api/metrics.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# prometheus_client's own variable, read by prometheus_client itself when a worker
# imports it: not one of our settings, and never passed on to the relay or consumers.
MULTIPROC_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


PREFIX = "connectin-api-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Someone else's process: alive, and not ours to judge.
        return True
    return True


def remove_orphaned(parent: Path) -> None:
    """Remove the directories of runs whose command is gone (killed with SIGKILL, so
    its own cleanup never ran; each holds a megabyte-sized file per worker and
    metric type). The command's pid is in the name; a live one keeps its directory."""
    for path in parent.glob(f"{PREFIX}*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def worker_metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory given to them in their environment and
    removed once they stopped: files of an earlier run would add its counts in."""
    if workers == 1:
        yield
        return
    remove_orphaned(Path(tempfile.gettempdir()))
    directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    # Written, not read: uvicorn's workers inherit it.
    os.environ[MULTIPROC_DIR_VAR] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR_VAR, None)
        shutil.rmtree(directory, ignore_errors=True)
