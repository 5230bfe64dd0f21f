"""Resolving upstream host names for render/ (which does no I/O).

Names are resolved before each render with a bounded wait and cached for ``ttl``
seconds; a name that does not resolve is simply absent, and render/ turns an upstream
left without servers into a degraded unit that answers 502/503 and says why.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import trio

from crdt.schema import WorkspaceState

__all__ = ["Resolver", "upstream_hosts"]


def upstream_hosts(workspaces: Iterable[WorkspaceState]) -> set[str]:
    """Host names (not IP literals) used by upstream servers."""
    names: set[str] = set()
    for state in workspaces:
        for upstream in state.upstreams.values():
            for server in upstream.servers:
                host = server.address.rpartition(":")[0].strip("[]")
                try:
                    ipaddress.ip_address(host)
                except ValueError:
                    names.add(host)
    return names


class Resolver:
    """A small cache in front of the system resolver."""

    def __init__(self, ttl: float = 30.0, wait: float = 2.0) -> None:
        self.ttl = ttl
        self.wait = wait
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def resolve(self, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """name -> IP literals for each name that resolves (within ``wait`` seconds)."""
        now = trio.current_time()
        todo = [n for n in names if self._cache.get(n, (-1.0, ()))[0] < now]
        if todo:
            with trio.move_on_after(self.wait):
                async with trio.open_nursery() as nursery:
                    for name in todo:
                        nursery.start_soon(self._one, name, now)
        return {n: self._cache[n][1] for n in names if n in self._cache and self._cache[n][1]}

    async def _one(self, name: str, now: float) -> None:
        try:
            infos = await trio.socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            self._cache[name] = (now + min(self.ttl, 5.0), ())
            return
        addrs = sorted({str(info[4][0]) for info in infos})
        self._cache[name] = (now + self.ttl, tuple(addrs))
