"""Free local TCP ports for the servers tests start (localstripe, uvicorn, the API
process, clusters of their own)."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Linux hands out ports from 32768 up to outgoing connections at any moment, so a
# port found free there can be taken before the server binds it.
EPHEMERAL_START = 32_768


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports nobody listens on, below the ephemeral
    range."""
    for _ in range(200):
        base = random.randrange(20_000, EPHEMERAL_START - count)
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")
