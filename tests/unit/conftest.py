"""unit/ holds tests of pure code: `make test-unit` runs them with no Postgres, Kafka
or localstripe. A test here that asks for a server fixture, or opens a connection from
Python (asyncpg, httpx, aiokafka, plain sockets), fails and says where it belongs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

# Every fixture that needs a server depends on one of these.
SERVER_FIXTURES = frozenset({"service_urls", "kafka_cluster", "own_postgres", "localstripe"})


def _refuse(sock: socket.socket, address: Any, *args: Any) -> Any:
    raise AssertionError(
        f"a unit test connected to {address!r}: tests that talk to a server belong in "
        "tests/integration"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture is set up: a session fixture would connect first."""
    wanted = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
    if wanted:
        pytest.fail(
            f"unit tests use no servers, this one asks for {sorted(wanted)}: "
            "move it to tests/integration",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def no_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    yield
