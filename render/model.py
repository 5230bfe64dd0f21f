"""What render/ takes besides the desired state, and what it returns.

The applier (node/) depends only on this module's shapes: it calls a render function
with an ``exclude`` set, stages :attr:`Rendered.files` under a prefix, runs ``nginx -t``
and, when the whole tree fails, bisects over :attr:`Rendered.units` by rendering again
with some units excluded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Listen", "NodeView", "Rendered", "UnitStatus"]


@dataclass(frozen=True, order=True)
class Listen:
    """One address this node listens on for a logical entry point."""

    address: str
    """An IP literal (``127.0.0.2``, ``::1``) or ``*`` for every address."""
    port: int


@dataclass(frozen=True)
class NodeView:
    """This node's side of rendering: where things live and how entry points bind."""

    node: str
    """The node's name (rendered into a response header and the default server)."""
    prefix: str
    """nginx's ``-p`` prefix (absolute); rendered paths are relative to ``prefix/conf``."""
    entry_points: Mapping[str, tuple[Listen, ...]] = field(default_factory=dict)
    """Overrides of the mesh settings' entry points, by logical name. An entry point
    absent here binds as the settings say."""
    certificates_dir: str = ""
    """Absolute directory holding installed certificate/key files named by certificate id
    (``<id>.crt``/``<id>.key``); empty means ``prefix/certs``."""
    acme_challenge_dir: str = ""
    """Absolute directory served at ``/.well-known/acme-challenge/``; empty means
    ``prefix/acme``."""
    resolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Upstream host names resolved by the node (I/O stays outside render/): name ->
    IP literals. A name missing here, or resolving to nothing, is unresolvable."""
    installed_certificates: frozenset[str] = frozenset()
    """Certificate ids whose files are installed on this node."""
    worker_processes: int | Literal["auto"] = "auto"
    user: str | None = None
    """``user`` directive; ``None`` when nginx does not run as root."""
    stream_address: str = "*"
    """Bind address (IP literal or ``*``) for stream proxies that name no address, so
    several nodes on one machine can each take their own loopback address."""
    stream_module: str = "/usr/lib/nginx/modules/ngx_stream_module.so"
    """Absolute path of nginx's dynamic stream module (Debian: libnginx-mod-stream),
    loaded only when stream proxies are rendered; empty when stream is built in."""


@dataclass(frozen=True)
class UnitStatus:
    """How one unit (a vhost or a stream proxy) came out of rendering on this node."""

    state: Literal["ok", "degraded", "skipped"]
    """``ok``; ``degraded`` (rendered, but answers 502/503 - e.g. no resolvable server);
    ``skipped`` (not rendered: invalid, a missing reference, excluded)."""
    reason: str = ""


@dataclass(frozen=True)
class Rendered:
    """A complete nginx configuration tree for one node."""

    files: Mapping[str, bytes]
    """Relative path under ``prefix/conf`` -> content; ``nginx.conf`` is the entry."""
    revision: str
    """Hex digest over the files (paths and bytes): same input, same revision."""
    units: Mapping[str, UnitStatus]
    """Every vhost and stream proxy by unit key (``<workspace>/<kind>/<id>``) with how it
    rendered; the applier may exclude any of these keys and render again."""
