"""A second relay or consumers process on a host whose metrics port is taken stops at
once with one clear line and its own exit code, not a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from core.metrics_server import EXIT_PORT_TAKEN
from core.settings import Settings
from tests.support.kafka import isolate
from tests.support.processes import Process, settings_env


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process is listening on, as a first relay would be."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("module", "variable"),
    [("relay", "RELAY_METRICS_PORT"), ("consumers", "CONSUMER_METRICS_PORT")],
)
def test_taken_metrics_port_is_one_clear_line(
    settings: Settings, taken_port: int, module: str, variable: str
) -> None:
    s = isolate(settings, "port")
    process = Process(module, settings_env(s, **{variable: str(taken_port)}))
    code = process.popen.wait(60)
    output = process.log_path.read_text()
    assert code == EXIT_PORT_TAKEN, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "already in use" in line]
    assert len(errors) == 1, output
    assert f"{variable}={taken_port}" in errors[0], output
