"""Restarting a killed Kafka node waits for its port to be let go: the JVM's main
thread turns zombie before its other threads drop the listening socket, and a node
started in that moment must not be refused as if a stranger held the port."""

from __future__ import annotations

import socket
import threading

import pytest

from devenv.common import ServiceError
from devenv.local_kafka import wait_port_released


def listen() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def test_a_port_let_go_within_the_grace_counts_as_free() -> None:
    server, port = listen()
    closer = threading.Timer(0.6, server.close)
    closer.start()
    try:
        wait_port_released("127.0.0.1", port, timeout=10.0)
    finally:
        closer.cancel()
        server.close()


def test_a_port_still_held_after_the_grace_is_reported_taken() -> None:
    server, port = listen()
    with server, pytest.raises(ServiceError, match="is taken by a process"):
        wait_port_released("127.0.0.1", port, timeout=0.5)
