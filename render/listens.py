"""Entry points bound to this node's addresses: mesh settings, overridden by the view."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from crdt.schema import MeshSettings
from render.model import Listen, NodeView

__all__ = ["BoundEntryPoint", "bind_entry_points", "check_listen", "overlaps"]


@dataclass(frozen=True, slots=True)
class BoundEntryPoint:
    """A logical entry point and where it listens on this node."""

    name: str
    protocol: Literal["http", "https"]
    listens: tuple[Listen, ...]


def check_listen(listen: Listen, what: str) -> Listen:
    """``listen`` with its address normalised; ``ValueError`` for a bad node view."""
    if isinstance(listen.port, bool) or not isinstance(listen.port, int):
        raise ValueError(f"{what}: port {listen.port!r} is not a number")  # noqa: TRY004 - one error type for a bad view
    if not 1 <= listen.port <= 65535:
        raise ValueError(f"{what}: port {listen.port} is out of range")
    if listen.address == "*":
        return listen
    try:
        address = str(ipaddress.ip_address(listen.address))
    except ValueError:
        raise ValueError(f"{what}: {listen.address!r} is neither an IP address nor '*'") from None
    return Listen(address, listen.port)


def overlaps(a: Listen, b: Listen) -> bool:
    """Whether two listening sockets would fight over a port (same port; same address or
    either on every address)."""
    return a.port == b.port and (a.address == b.address or "*" in (a.address, b.address))


def bind_entry_points(settings: MeshSettings, view: NodeView) -> dict[str, BoundEntryPoint]:
    """Every entry point of the settings with this node's listens, by name.

    The view's override replaces the settings' address and port; an empty override
    leaves the entry point unbound on this node. Raises ``ValueError`` when two entry
    points would share an address and port (only a node's own view can cause that).
    """
    bound: dict[str, BoundEntryPoint] = {}
    for name in sorted(settings.entry_points):
        entry = settings.entry_points[name]
        if name in view.entry_points:
            listens: Iterable[Listen] = view.entry_points[name]
        else:
            listens = (Listen(entry.address or "*", entry.port),)
        checked = tuple(sorted({check_listen(lst, f"entry point {name!r}") for lst in listens}))
        bound[name] = BoundEntryPoint(name, entry.protocol, checked)
    seen: dict[Listen, str] = {}
    for ep in bound.values():
        for lst in ep.listens:
            if lst in seen:
                raise ValueError(
                    f"entry points {seen[lst]!r} and {ep.name!r} both listen on"
                    f" {lst.address}:{lst.port}"
                )
            seen[lst] = ep.name
    return bound
