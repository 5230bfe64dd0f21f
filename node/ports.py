"""Finding free loopback ports (the demo and the end-to-end tests start several nodes)."""

from __future__ import annotations

import socket
from collections import deque

__all__ = ["free_port", "free_udp_tcp_port"]

_ATTEMPTS = 50
_RECENT = 4096
_recent: deque[int] = deque(maxlen=_RECENT)
_recent_set: set[int] = set()
"""Ports this process handed out lately. A port is picked, not held, until whoever asked
binds it: a later pick must not hand out the same one again (the kernel may well offer
it, nothing being bound there yet)."""


def _remember(port: int) -> int:
    if len(_recent) == _RECENT:
        _recent_set.discard(_recent[0])
    _recent.append(port)
    _recent_set.add(port)
    return port


def _unbound_tcp(host: str) -> int:
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _recent_set:
            return port
    raise OSError(f"no free TCP port on {host} that was not handed out already")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now and that this process has not handed out
    lately (another process may still take it before it is used)."""
    return _remember(_unbound_tcp(host))


def free_udp_tcp_port(host: str = "127.0.0.1", attempts: int = _ATTEMPTS) -> int:
    """A port free for both TCP and UDP (a mesh node binds both), as :func:`free_port`."""
    for _ in range(attempts):
        port = _unbound_tcp(host)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, port))
        except OSError:
            continue
        return _remember(port)
    raise OSError(f"no port free for both TCP and UDP on {host}")
