"""Planning one virtual host: its server block and what it adds to shared files.

A plan is computed against the shared state built by the vhosts before it (names
already claimed, certificates already mapped) and committed only once its file has
rendered, so a vhost that fails leaves no trace in the shared files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from crdt.schema import Location, VirtualHost, WorkspaceState
from render.access import AccessRuleLine, access_lines, deny_variable
from render.blocks import (
    STANDARD_PROXY_HEADERS,
    Header,
    LocationBlock,
    ServerBlock,
    merge_headers,
)
from render.listens import BoundEntryPoint
from render.model import Listen
from render.tls import certificates_for
from render.upstreams import UpstreamPlan

__all__ = [
    "ACME_PATH",
    "NODE_HEADER",
    "STATUS_HEADER",
    "SharedHttp",
    "VhostContext",
    "VhostPlan",
    "plan_vhost",
]

ACME_PATH = "/.well-known/acme-challenge/"
STATUS_HEADER = "X-NxMesh-Status"
NODE_HEADER = "X-NxMesh-Node"


@dataclass
class SharedHttp:
    """What rendered vhosts contribute to files they share, built in unit order."""

    claims: dict[tuple[str, str], str] = field(default_factory=dict)
    """("address:port", server name) -> the unit that serves it there."""
    tls_map: dict[str, tuple[str, str]] = field(default_factory=dict)
    """server name -> (certificate id, unit)."""
    redirects: dict[tuple[tuple[Listen, ...], int], list[str]] = field(default_factory=dict)
    """(plain-HTTP listens, https port) -> names redirected there."""
    http2: set[Listen] = field(default_factory=set)
    """https listens on which some vhost wants HTTP/2."""
    hsts_maps: dict[str, str] = field(default_factory=dict)
    """variable -> HSTS value, for blocks that serve both http and https."""
    names: int = 0
    longest_name: int = 0


class _Bound(NamedTuple):
    http: tuple[Listen, ...]
    https: tuple[Listen, ...]
    http_keys: tuple[str, ...]
    """The same listens as plain strings: cheap dictionary keys for name claims."""
    https_keys: tuple[str, ...]


def _key(listen: Listen) -> str:
    return f"{listen.address}:{listen.port}"


@dataclass(frozen=True, slots=True)
class VhostContext:
    """Read-only inputs a vhost plan needs besides the vhost."""

    workspace: str
    state: WorkspaceState
    entry_points: Mapping[str, BoundEntryPoint]
    upstream: Callable[[str], UpstreamPlan]
    installed: frozenset[str]
    ambiguous: Mapping[str, list[str]]
    base_headers: tuple[Header, ...]
    listens: dict[tuple[str, ...], _Bound] = field(default_factory=dict)
    """Cache: entry-point names -> (http, https) listens."""


class VhostPlan(NamedTuple):
    unit: str
    block: ServerBlock | None
    tls_names: tuple[tuple[str, str], ...] = ()
    redirect: tuple[tuple[Listen, ...], int, tuple[str, ...]] | None = None
    claims: tuple[tuple[str, str], ...] = ()
    http2: tuple[Listen, ...] = ()
    hsts_maps: tuple[tuple[str, str], ...] = ()
    upstreams: frozenset[str] = frozenset()
    """Ids of the upstreams its locations proxy to."""
    gates: frozenset[str] = frozenset()
    """Access lists whose ``geo`` form this vhost's returning locations use."""
    notes: tuple[str, ...] = ()
    skip: str | None = None


def _hsts_value(vhost: VirtualHost) -> str | None:
    hsts = vhost.tls.hsts
    if hsts is None:
        return None
    value = f"max-age={int(hsts.max_age)}"
    if hsts.include_subdomains:
        value += "; includeSubDomains"
    if hsts.preload:
        value += "; preload"
    return value


@lru_cache(maxsize=64)
def _hsts_variable(value: str) -> str:
    return "nxm_hsts_" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _listens(vhost: VirtualHost, ctx: VhostContext) -> _Bound:
    """The vhost's listens on this node (cached per distinct entry-point list)."""
    cached = ctx.listens.get(vhost.entry_points)
    if cached is None:
        http: set[Listen] = set()
        https: set[Listen] = set()
        for name in vhost.entry_points:
            ep = ctx.entry_points.get(name)
            if ep is not None:
                (https if ep.protocol == "https" else http).update(ep.listens)
        plain, tls = tuple(sorted(http)), tuple(sorted(https))
        cached = _Bound(plain, tls, tuple(map(_key, plain)), tuple(map(_key, tls)))
        ctx.listens[vhost.entry_points] = cached
    return cached


@lru_cache(maxsize=1024)
def _with_header(headers: tuple[Header, ...], header: Header) -> tuple[Header, ...]:
    return merge_headers(headers, (header,))


def plan_vhost(unit: str, vhost: VirtualHost, ctx: VhostContext, shared: SharedHttp) -> VhostPlan:
    """The server block for ``vhost`` and its contributions, given what came before."""
    notes: list[str] = []
    bound = _listens(vhost, ctx)
    http, https = bound.http, bound.https
    if not http and not https:
        return VhostPlan(unit, None, skip="none of its entry points listens on this node")

    tls = vhost.tls
    certs: dict[str, str] = {}
    if tls.mode != "off" and https:
        certs, tls_notes = certificates_for(vhost, ctx.state, ctx.installed, ctx.ambiguous)
        notes.extend(tls_notes)
    if not certs:
        https = ()  # nothing to serve over TLS without a certificate
    redirect = bool(tls.redirect_http and http and https and len(certs) == len(vhost.server_names))
    if tls.redirect_http and http and not redirect:
        notes.append("HTTP is not redirected to HTTPS until every name has a certificate")
    block_http = () if redirect else http
    listens = block_http + https
    if not listens:
        return VhostPlan(unit, None, notes=(*notes, "not served on this node"))

    # Names another unit already serves on one of our listens (or maps to another
    # certificate) are left to it: nginx would ignore them, or refuse a duplicate map key.
    every = bound.http_keys + bound.https_keys if https else bound.http_keys
    claims = shared.claims
    names: list[str] = []
    for name in vhost.server_names:
        owner = None
        for lst in every:
            owner = claims.get((lst, name))
            if owner is not None:
                break
        if owner is None and name in certs:
            mapped = shared.tls_map.get(name)
            if mapped is not None and mapped[0] != certs[name]:
                owner = mapped[1]
        if owner is None:
            names.append(name)
        else:
            notes.append(f"server name {name} is already served by {owner}")
    if not names:
        return VhostPlan(unit, None, skip="all its server names are served by other units")

    server_headers = ctx.base_headers
    if vhost.response_headers:
        server_headers = merge_headers(server_headers, _headers(vhost.response_headers))
    hsts_maps: tuple[tuple[str, str], ...] = ()
    hsts = _hsts_value(vhost) if https else None
    if hsts is not None:
        if block_http:  # HSTS must not be sent over plain HTTP: only when $https is on
            var = _hsts_variable(hsts)
            hsts_maps = ((var, hsts),)
            sts = Header("Strict-Transport-Security", "$" + var, raw=True)
        else:
            sts = Header("Strict-Transport-Security", hsts)
        server_headers = _with_header(server_headers, sts)

    acme = bool(block_http)
    locations: list[LocationBlock] = []
    upstreams: set[str] = set()
    gated = False
    for loc in vhost.locations:
        if acme and loc.match == "prefix" and loc.path == ACME_PATH:
            notes.append(f"location {ACME_PATH} is reserved for ACME on plain HTTP")
            continue
        location = _location(loc, vhost, ctx, server_headers, notes)
        if location.action == "proxy" and loc.upstream is not None:
            upstreams.add(loc.upstream)
        gated = gated or location.deny_variable is not None
        locations.append(location)
    if not any(loc.match == "prefix" and loc.path == "/" for loc in vhost.locations):
        # without a catch-all, nginx would serve files from prefix/html for other paths
        locations.append(_NOT_FOUND)

    access: tuple[AccessRuleLine, ...] = ()
    if vhost.access_list is not None:
        access = access_lines(ctx.state.access_lists[vhost.access_list])
    timeouts: tuple[tuple[str, float], ...] = ()
    if vhost.proxy_connect_timeout or vhost.proxy_read_timeout or vhost.proxy_send_timeout:
        timeouts = tuple(
            (directive, value)
            for directive, value in (
                ("proxy_connect_timeout", vhost.proxy_connect_timeout),
                ("proxy_read_timeout", vhost.proxy_read_timeout),
                ("proxy_send_timeout", vhost.proxy_send_timeout),
            )
            if value is not None
        )
    block = ServerBlock(
        unit,
        listens,
        tuple(names),
        access,
        vhost.client_max_body_size,
        timeouts,
        None if server_headers is ctx.base_headers else server_headers,
        acme,
        tuple(locations),
    )
    return VhostPlan(
        unit,
        block,
        tuple([(n, certs[n]) for n in names if n in certs]) if certs else (),
        (http, https[0].port, tuple(names)) if redirect else None,
        tuple([(lst, n) for lst in every for n in names]),
        https if tls.http2 else (),
        hsts_maps,
        frozenset(upstreams),
        frozenset((vhost.access_list,)) if gated and vhost.access_list else frozenset(),
        tuple(notes),
    )


_NOT_FOUND = LocationBlock("/", False, "return", status=404)


def _headers(values: Mapping[str, str]) -> tuple[Header, ...]:
    return tuple([Header(k, v) for k, v in values.items()]) if values else ()


_UPGRADE = Header("Upgrade", "$http_upgrade", raw=True)
# request headers by (websocket, keep-alive upstream) when the vhost adds none of its own
_FUNCTIONAL: dict[tuple[bool, bool], tuple[Header, ...] | None] = {
    (False, False): None,
    (False, True): merge_headers(STANDARD_PROXY_HEADERS, (Header("Connection", '""', raw=True),)),
    (True, False): merge_headers(
        STANDARD_PROXY_HEADERS,
        (_UPGRADE, Header("Connection", "$nxm_connection_upgrade", raw=True)),
    ),
    (True, True): merge_headers(
        STANDARD_PROXY_HEADERS,
        (_UPGRADE, Header("Connection", "$nxm_connection_upgrade_keepalive", raw=True)),
    ),
}


def _location(
    loc: Location,
    vhost: VirtualHost,
    ctx: VhostContext,
    server_headers: tuple[Header, ...],
    notes: list[str],
) -> LocationBlock:
    exact = loc.match == "exact"
    own = _headers(loc.response_headers)
    response = merge_headers(server_headers, own) if own else None
    action = loc.action
    gate = None
    if vhost.access_list is not None and action != "static":
        gate = deny_variable(ctx.workspace, vhost.access_list)
    if action == "return":
        return LocationBlock(
            loc.path,
            exact,
            "return",
            None,
            loc.status,
            loc.url,
            loc.text,
            None,
            None,
            response,
            gate,
        )
    if action == "static":
        return LocationBlock(
            loc.path, exact, "static", None, None, None, None, loc.root, None, response
        )
    assert loc.upstream is not None  # the schema requires it for proxy
    upstream = ctx.upstream(loc.upstream)
    if not upstream.usable:
        why = f"upstream {loc.upstream} has no usable server"
        notes.append(f"{loc.path}: {why} ({'; '.join(upstream.notes)}); answering 503")
        # the header says why in fixed words: the notes may quote input
        status = Header(STATUS_HEADER, f"degraded: {why}: {upstream.unusable}")
        return LocationBlock(
            loc.path,
            exact,
            "unavailable",
            status=503,
            text=f"{why} on this node",
            response_headers=merge_headers(server_headers, own, (status,)),
            deny_variable=gate,
        )
    if upstream.notes:
        notes.append(f"upstream {loc.upstream}: " + "; ".join(upstream.notes))
    keepalive = upstream.keepalive > 0
    if vhost.request_headers or loc.request_headers:
        base = _FUNCTIONAL[(vhost.websocket, keepalive)] or STANDARD_PROXY_HEADERS
        proxy_headers: tuple[Header, ...] | None = merge_headers(
            base, _headers(vhost.request_headers), _headers(loc.request_headers)
        )
    else:
        proxy_headers = _FUNCTIONAL[(vhost.websocket, keepalive)]
    return LocationBlock(
        loc.path, exact, "proxy", upstream, None, None, None, None, proxy_headers, response
    )
