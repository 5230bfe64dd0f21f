"""What templates receive: plain, already-decided blocks (no policy left in templates).

The per-vhost shapes are NamedTuples rather than frozen dataclasses: a 10,000-vhost render
builds ~100,000 of them, and a tuple is several times cheaper to construct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from render.access import AccessRuleLine
from render.model import Listen
from render.upstreams import UpstreamPlan

__all__ = [
    "STANDARD_PROXY_HEADERS",
    "Header",
    "HttpsAnchor",
    "LocationBlock",
    "RedirectServer",
    "ServerBlock",
    "StreamBlock",
    "merge_headers",
]


class Header(NamedTuple):
    """A header and its value; ``raw`` values are nginx expressions written by render/
    itself (``$host``), never user input, and are checked by the ``header_value`` filter."""

    name: str
    value: str
    raw: bool = False


STANDARD_PROXY_HEADERS: tuple[Header, ...] = (
    Header("Host", "$host", raw=True),
    Header("X-Real-IP", "$remote_addr", raw=True),
    Header("X-Forwarded-For", "$proxy_add_x_forwarded_for", raw=True),
    Header("X-Forwarded-Proto", "$scheme", raw=True),
)
"""Set once at http level; a location that needs any other request header repeats them
(nginx inherits ``proxy_set_header`` all-or-nothing)."""


def merge_headers(*layers: tuple[Header, ...]) -> tuple[Header, ...]:
    """Later layers override earlier ones by case-insensitive name, keeping first position."""
    merged: dict[str, Header] = {}
    for layer in layers:
        for header in layer:
            merged[header.name.lower()] = header
    return tuple(merged.values())


class LocationBlock(NamedTuple):
    path: str
    exact: bool
    action: Literal["proxy", "return", "static", "unavailable"]
    """``unavailable``: a proxy location whose upstream has no usable server (503)."""
    upstream: UpstreamPlan | None = None
    status: int | None = None
    url: str | None = None
    text: str | None = None
    root: str | None = None
    proxy_headers: tuple[Header, ...] | None = None
    """``None``: inherit the http-level request headers."""
    response_headers: tuple[Header, ...] | None = None
    """``None``: inherit the server's response headers."""
    deny_variable: str | None = None
    """A ``return`` (or 503) answer comes before nginx's access phase: when set, clients
    for which this variable is 1 get 403 first (see render/access.py)."""


class ServerBlock(NamedTuple):
    """One vhost's ``server {}`` on this node."""

    unit: str
    listens: tuple[Listen, ...]
    names: tuple[str, ...]
    access: tuple[AccessRuleLine, ...]
    client_max_body_size: int | None
    timeouts: tuple[tuple[str, float], ...]
    """(``proxy_*_timeout`` directive, seconds)."""
    response_headers: tuple[Header, ...] | None
    """``None``: inherit the http-level response headers."""
    acme: bool
    """Serve the ACME HTTP-01 challenge location (the block has plain-HTTP listens)."""
    locations: tuple[LocationBlock, ...]


@dataclass(frozen=True, slots=True)
class RedirectServer:
    """A shared plain-HTTP server answering its names with a redirect to https."""

    listens: tuple[Listen, ...]
    https_port: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HttpsAnchor:
    """The default TLS server of one https address: it alone holds the TLS setup."""

    listen: Listen
    http2: bool


@dataclass(frozen=True, slots=True)
class StreamBlock:
    """One stream proxy's ``server {}`` (TCP or UDP)."""

    unit: str
    listen: Listen
    udp: bool
    upstream: UpstreamPlan | None
    """``None``: no usable server; the server closes connections at once."""
    access: tuple[AccessRuleLine, ...]
    connect_timeout: float | None
    proxy_timeout: float | None
