"""Finding free loopback ports (the demo and the end-to-end tests start several nodes)."""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_udp_tcp_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (it may be taken before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_tcp_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port free for both TCP and UDP (a mesh node binds both)."""
    for _ in range(attempts):
        port = free_port(host)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise OSError(f"no port free for both TCP and UDP on {host}")
