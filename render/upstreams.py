"""Upstreams as this node can render them: host names replaced by resolved IPs.

render/ never resolves: a host name becomes the IPs the node put in
:attr:`NodeView.resolved`. nginx refuses to load an upstream with no server (and
resolves names itself at load, failing on any it cannot), so an upstream left with no
usable server is not rendered at all - its users answer 503 instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from crdt.schema import NextUpstream, Upstream

__all__ = ["UNUSABLE", "ServerLine", "UpstreamPlan", "plan_upstream", "upstream_name"]

UNUSABLE = {
    "unresolved": "no server name resolves on this node",
    "down": "every server is down",
    "unsafe": "it cannot be rendered safely",
}


@dataclass(frozen=True, slots=True)
class ServerLine:
    """One ``server`` line: an IP literal, a port and the server's parameters."""

    ip: str
    port: int
    weight: int
    max_fails: int
    fail_timeout: float
    backup: bool
    down: bool


@dataclass(frozen=True, slots=True)
class UpstreamPlan:
    """An upstream block, or why it cannot be one."""

    name: str
    """The nginx upstream name, unique across workspaces (``nxm.<ws>.<id>``)."""
    method: str
    hash_key: str | None
    consistent: bool
    servers: tuple[ServerLine, ...]
    keepalive: int
    keepalive_timeout: float | None
    next_upstream: NextUpstream
    usable: bool
    """False: no server is left to send to; users answer 503 and no block is rendered."""
    notes: tuple[str, ...]
    """What differs from the desired state (unresolved names, promoted backups...)."""
    unusable: str = ""
    """Why no server is usable, from a fixed vocabulary (it is sent in a response header,
    so it never quotes input): see :data:`UNUSABLE`."""


def upstream_name(workspace: str, ident: str) -> str:
    """Namespaced so two workspaces' upstreams cannot collide: ids never contain '.'."""
    return f"nxm.{workspace}.{ident}"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@lru_cache(maxsize=8192)
def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _resolve(host: str, resolved: Mapping[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """IP literals for ``host`` (itself when it is one), sorted so a resolver's rotation
    does not change the revision; ``None`` when the node could not resolve it."""
    literal = _ip_literal(host)
    if literal is not None:
        return (literal,)
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for raw in resolved.get(host, ()):
        try:
            ips.add(ipaddress.ip_address(raw))
        except ValueError:
            continue  # the node's resolver handed over garbage: treat as unresolved
    if not ips:
        return None
    return tuple(str(ip) for ip in sorted(ips, key=lambda ip: (ip.version, int(ip))))


def plan_upstream(
    workspace: str, upstream: Upstream, resolved: Mapping[str, tuple[str, ...]]
) -> UpstreamPlan:
    """The block to render for ``upstream`` on a node that resolved names as ``resolved``."""
    lines: list[ServerLine] = []
    seen: set[tuple[str, int]] = set()
    unresolved: list[str] = []
    for server in upstream.servers:
        host, port = _split(server.address)
        ips = _resolve(host.lower(), resolved)
        if ips is None:
            unresolved.append(host)
            continue
        for ip in ips:
            if (ip, port) in seen:  # two names resolving to one address: keep the first
                continue
            seen.add((ip, port))
            lines.append(
                ServerLine(
                    ip,
                    port,
                    server.weight,
                    server.max_fails,
                    server.fail_timeout,
                    server.backup,
                    server.down,
                )
            )
    notes: list[str] = []
    if unresolved:
        notes.append("unresolved server names: " + ", ".join(sorted(set(unresolved))))
    if lines and all(line.backup for line in lines):
        # nginx needs a primary; with every primary unresolvable the backups are all
        # that can serve, so they serve as primaries
        lines = [_unbackup(line) for line in lines]
        notes.append("no primary server resolves; backups serve as primaries")
    usable = any(not line.down for line in lines)
    unusable = "" if usable else UNUSABLE["down" if lines else "unresolved"]
    if unusable:
        notes.append(unusable)
    return UpstreamPlan(
        name=upstream_name(workspace, upstream.id),
        method=upstream.method,
        hash_key=upstream.hash_key,
        consistent=upstream.consistent,
        servers=tuple(lines) if usable else (),
        keepalive=upstream.keepalive,
        keepalive_timeout=upstream.keepalive_timeout,
        next_upstream=upstream.next_upstream,
        usable=usable,
        notes=tuple(notes),
        unusable=unusable,
    )


def _unbackup(line: ServerLine) -> ServerLine:
    return ServerLine(
        line.ip, line.port, line.weight, line.max_fails, line.fail_timeout, False, line.down
    )
