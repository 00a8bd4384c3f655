"""The directory where `connectin api --workers N` has its workers keep their HTTP
metrics, so that `/metrics`, answered by whichever worker a scrape reaches, adds every
worker's counts up (api/metrics.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# prometheus_client's own variable, read by prometheus_client itself when a worker
# imports it: not one of our settings, and never passed on to the relay or consumers.
MULTIPROC_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def worker_metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory given to them in their environment and
    removed once they stopped: files of an earlier run would add its counts in."""
    if workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="connectin-api-metrics-")
    # Written, not read: uvicorn's workers inherit it.
    os.environ[MULTIPROC_DIR_VAR] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR_VAR, None)
        shutil.rmtree(directory, ignore_errors=True)
