"""What the virtual-host and upstream forms send: request bodies built from the fields.

A create sends the whole entity; an edit sends (``PATCH``) only the top-level fields the
form changed, so what the form does not show (more locations, headers, TLS) is kept.
Values are passed on as typed; the API validates them and its messages are the ones the
operator sees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui.client import FieldError
from tui.constants import DEFAULT_ENTRY_POINT

__all__ = [
    "UPSTREAM_FIELDS",
    "VHOST_FIELDS",
    "UpstreamValues",
    "VhostValues",
    "format_servers",
    "parse_servers",
    "split_list",
    "upstream_body",
    "vhost_body",
]

_SEPARATORS = re.compile(r"[\s,]+")


def split_list(text: str) -> list[str]:
    """Items separated by commas or white space."""
    return [item for item in _SEPARATORS.split(text.strip()) if item]


def _number(text: str) -> Any:
    """An int or a float when ``text`` is one; else the text (the API will say why)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# ---------------------------------------------------------------- virtual hosts

VHOST_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "server_names": ("server_names",),
    "upstream": ("locations[0].upstream",),
    "path": ("locations[0].path", "locations"),
    "entry_points": ("entry_points",),
    "enabled": ("enabled",),
    "websocket": ("websocket",),
    "description": ("description",),
}
"""Form field -> the API paths it edits (for placing field errors)."""


@dataclass(frozen=True, slots=True)
class VhostValues:
    """What the virtual-host form holds."""

    name: str
    server_names: str
    upstream: str | None
    """The upstream's id; None leaves the first location's action alone."""
    path: str = "/"
    entry_points: str = DEFAULT_ENTRY_POINT
    enabled: bool = True
    websocket: bool = False
    description: str = ""

    @classmethod
    def of(cls, vhost: Mapping[str, Any]) -> VhostValues:
        """The form's values for a stored virtual host (its first location)."""
        locations = vhost.get("locations") or [{}]
        first = locations[0] if isinstance(locations[0], dict) else {}
        return cls(
            name=str(vhost.get("name", "")),
            server_names=" ".join(vhost.get("server_names") or ()),
            upstream=first.get("upstream"),
            path=str(first.get("path", "/")),
            entry_points=" ".join(vhost.get("entry_points") or (DEFAULT_ENTRY_POINT,)),
            enabled=bool(vhost.get("enabled", True)),
            websocket=bool(vhost.get("websocket", False)),
            description=str(vhost.get("description", "")),
        )


def _locations(values: VhostValues, stored: list[Any]) -> list[Any]:
    first = dict(stored[0]) if stored and isinstance(stored[0], dict) else {}
    first["path"] = values.path
    if values.upstream is not None:
        first["action"] = "proxy"
        first["upstream"] = values.upstream
    return [first, *stored[1:]]


def vhost_body(values: VhostValues, original: Mapping[str, Any] | None) -> dict[str, Any]:
    """The create body (``original`` None) or the PATCH body of changed fields."""
    body: dict[str, Any] = {
        "name": values.name,
        "server_names": split_list(values.server_names),
        "entry_points": split_list(values.entry_points),
        "enabled": values.enabled,
        "websocket": values.websocket,
        "description": values.description,
    }
    if original is None:
        location: dict[str, Any] = {"path": values.path}
        if values.upstream is not None:
            location["upstream"] = values.upstream
        return {**body, "locations": [location]}
    before = VhostValues.of(original)
    changed = {k: v for k, v in body.items() if v != vhost_body_value(before, k)}
    if (values.path, values.upstream) != (before.path, before.upstream):
        changed["locations"] = _locations(values, list(original.get("locations") or []))
    return changed


def vhost_body_value(values: VhostValues, key: str) -> Any:
    """The body value the form's ``values`` give for top-level field ``key``."""
    if key in ("server_names", "entry_points"):
        return split_list(getattr(values, key))
    return getattr(values, key)


# ---------------------------------------------------------------- upstreams

UPSTREAM_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "servers": ("servers",),
    "method": ("method", "consistent"),
    "hash_key": ("hash_key",),
    "keepalive": ("keepalive",),
    "description": ("description",),
}

_FLAGS = ("backup", "down")
_OPTIONS = ("weight", "max_fails", "fail_timeout")


def parse_servers(text: str) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """One server a line: ``ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [backup]
    [down]``. Returns the servers and the errors of lines that cannot be read."""
    servers: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        address, *rest = line.split()
        where = f"servers[{len(servers)}]"
        server: dict[str, Any] = {"address": address}
        for token in rest:
            key, sep, value = token.partition("=")
            if not sep and key in _FLAGS:
                server[key] = True
            elif sep and key in _OPTIONS:
                server[key] = _number(value)
            else:
                known = ", ".join([*(f"{o}=..." for o in _OPTIONS), *_FLAGS])
                errors.append(FieldError(where, f"{token!r} is not one of {known}"))
        servers.append(server)
    return servers, errors


def format_servers(servers: Any) -> str:
    """The text :func:`parse_servers` reads back as ``servers`` (defaults left out)."""
    defaults = {"weight": 1, "max_fails": 1, "fail_timeout": 10.0}
    lines = []
    for server in servers or ():
        if not isinstance(server, dict):
            continue
        parts = [str(server.get("address", ""))]
        for key in _OPTIONS:
            value = server.get(key, defaults[key])
            if value != defaults[key]:
                shown = int(value) if isinstance(value, float) and value.is_integer() else value
                parts.append(f"{key}={shown}")
        parts += [flag for flag in _FLAGS if server.get(flag)]
        lines.append(" ".join(parts))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class UpstreamValues:
    """What the upstream form holds."""

    name: str
    servers: str
    method: str = "round_robin"
    hash_key: str = ""
    keepalive: str = "0"
    description: str = ""

    @classmethod
    def of(cls, upstream: Mapping[str, Any]) -> UpstreamValues:
        return cls(
            name=str(upstream.get("name", "")),
            servers=format_servers(upstream.get("servers")),
            method=str(upstream.get("method", "round_robin")),
            hash_key=str(upstream.get("hash_key") or ""),
            keepalive=str(upstream.get("keepalive", 0)),
            description=str(upstream.get("description", "")),
        )


def upstream_body(
    values: UpstreamValues, original: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[FieldError]]:
    """(the create body or the PATCH body of changed fields, errors of the servers text)."""
    servers, errors = parse_servers(values.servers)
    body: dict[str, Any] = {
        "name": values.name,
        "servers": servers,
        "method": values.method,
        "hash_key": values.hash_key or None,
        "keepalive": _number(values.keepalive.strip()) if values.keepalive.strip() else 0,
        "description": values.description,
    }
    if original is None:
        return body, errors
    before = UpstreamValues.of(original)
    changed = {k: v for k, v in body.items() if getattr(values, k) != getattr(before, k)}
    return changed, errors
