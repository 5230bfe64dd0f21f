"""Access lists: ``allow``/``deny`` lines, and a ``geo`` form for ``return`` locations.

nginx checks ``allow``/``deny`` in its access phase, *after* the rewrite phase in which
``return`` answers - so a ``return`` location would ignore them. Locations that return
(and the 503 answers of unusable upstreams) are gated by ``if ($nxm_deny_...) { return
403; }`` on a ``geo`` variable computed from the same rules.

``geo`` matches the longest prefix while access lists take the first matching rule. The
two agree once every rule whose network lies inside an earlier rule's network is dropped
(it can never match first): networks are either nested or disjoint, so among the rules
left that contain an address, the most specific one is also the earliest.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import NamedTuple

from crdt.schema import AccessList

__all__ = ["AccessRuleLine", "GeoEntry", "access_lines", "deny_variable", "geo_entries"]


class AccessRuleLine(NamedTuple):
    allow: bool
    source: str


class GeoEntry(NamedTuple):
    network: str
    deny: bool


def access_lines(acl: AccessList) -> tuple[AccessRuleLine, ...]:
    """allow/deny lines in order; the list's default closes them (nginx allows by default)."""
    lines: list[AccessRuleLine] = []
    for rule in acl.rules:
        lines.append(AccessRuleLine(rule.action == "allow", rule.source))
        if rule.source == "all":  # first match decides: nothing after it can apply
            return tuple(lines)
    if acl.default == "deny":
        lines.append(AccessRuleLine(False, "all"))
    return tuple(lines)


def geo_entries(acl: AccessList) -> tuple[bool, tuple[GeoEntry, ...]]:
    """(deny by default, entries) of a ``geo`` equivalent to the list's first match."""
    kept: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bool]] = []
    for rule in acl.rules:
        deny = rule.action == "deny"
        if rule.source == "all":
            return deny, tuple(GeoEntry(str(net), d) for net, d in kept)
        net = ipaddress.ip_network(rule.source, strict=False)
        shadowed = any(
            net.version == earlier.version and net.subnet_of(earlier)  # type: ignore[arg-type]
            for earlier, _ in kept
        )
        if not shadowed:
            kept.append((net, deny))
    return acl.default == "deny", tuple(GeoEntry(str(net), d) for net, d in kept)


def deny_variable(workspace: str, ident: str) -> str:
    """The ``geo`` variable (without ``$``) that is 1 for clients the list denies.
    Hashed: ids may hold '-', which variable names may not."""
    digest = hashlib.sha256(f"{workspace}/{ident}".encode()).hexdigest()[:16]
    return f"nxm_deny_{digest}"
