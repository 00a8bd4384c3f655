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

from core.settings import METRICS_DIR_VAR, Settings


@contextmanager
def worker_metrics_dir(settings: Settings, workers: int) -> Iterator[None]:
    """With several workers, a fresh directory given to them in their environment and
    removed once they stopped. A directory the operator set is used as it is, its
    files of an earlier run removed first: they would add that run's counts in."""
    configured = settings.api.metrics_dir
    if configured:
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
        yield
        return
    if workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="connectin-api-metrics-")
    # Written, not read: uvicorn's workers inherit it, and read it back through
    # Settings and prometheus_client.
    os.environ[METRICS_DIR_VAR] = directory
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_VAR, None)
        shutil.rmtree(directory, ignore_errors=True)
