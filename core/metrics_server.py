"""The Prometheus endpoint of a long-running process (relay, consumers).

Scaling out on one host is the first thing people try, and a second process on the
same port used to die with an OSError traceback. A taken port is now one log line
naming the variable, and the exit code EXIT_PORT_TAKEN.
"""

from __future__ import annotations

import errno

from prometheus_client import start_http_server

# Distinct from 1 (a crash) and 2 (a topic of the wrong shape), so a supervisor or a
# script can tell "fix the configuration" from "restart me".
EXIT_PORT_TAKEN = 3


class MetricsPortTaken(RuntimeError):
    """The configured metrics port is already bound by another process."""


def start_metrics_server(port: int, variable: str) -> None:
    """Serve /metrics on `port`; raises MetricsPortTaken if another process has it."""
    try:
        start_http_server(port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise MetricsPortTaken(
            f"{variable}={port} is already in use (another process on this host?): "
            f"give each process its own {variable}, or 0 to turn its metrics off"
        ) from None
