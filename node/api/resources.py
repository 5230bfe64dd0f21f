"""The entity resources of the API: where each kind lives, who may write it, its filters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crdt.schema import (
    AccessList,
    Certificate,
    Entity,
    FieldError,
    Organization,
    StreamProxy,
    Upstream,
    VirtualHost,
    Workspace,
)
from node.api.access import Role
from node.api.problems import validation_problem

__all__ = ["RESOURCES", "SINGULAR", "QueryFilter", "Resource", "apply_filters"]


@dataclass(frozen=True)
class QueryFilter:
    """``?name=value`` on a list endpoint: keeps the entities ``match`` accepts."""

    name: str
    description: str
    match: Callable[[Any, Any], bool]
    parse: Callable[[str], Any] = str
    """Turns the query value into what ``match`` compares (ValueError: a 422)."""


@dataclass(frozen=True)
class Resource:
    kind: type[Entity]
    path: str
    """URL segment: ``/v1/<path>`` or ``/v1/workspaces/{workspace}/<path>``."""
    singular: str
    in_workspace: bool
    write_role: Role
    filters: tuple[QueryFilter, ...]

    @property
    def collection(self) -> str:
        return self.kind.COLLECTION

    @property
    def title(self) -> str:
        return self.kind.__name__


def _bool(value: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("must be true or false")


def _int(value: str) -> int:
    if not value.isdigit():
        raise ValueError("must be a whole number")
    return int(value)


_NAME = QueryFilter("name", "Only entities with exactly this name.", lambda e, v: e.name == v)


def _vhost_upstreams(vh: VirtualHost) -> set[str]:
    return {loc.upstream for loc in vh.locations if loc.upstream is not None}


RESOURCES: tuple[Resource, ...] = (
    Resource(Organization, "organizations", "organization", False, Role.admin, (_NAME,)),
    Resource(
        Workspace,
        "workspaces",
        "workspace",
        False,
        Role.admin,
        (
            _NAME,
            QueryFilter(
                "organization",
                "Only workspaces of this organization (id).",
                lambda e, v: e.organization == v,
            ),
        ),
    ),
    Resource(
        Upstream,
        "upstreams",
        "upstream",
        True,
        Role.operator,
        (
            _NAME,
            QueryFilter(
                "server",
                "Only upstreams with this server address (host:port).",
                lambda e, v: any(s.address == v for s in e.servers),
            ),
            QueryFilter("method", "Only upstreams balancing this way.", lambda e, v: e.method == v),
        ),
    ),
    Resource(
        VirtualHost,
        "vhosts",
        "virtual host",
        True,
        Role.operator,
        (
            _NAME,
            QueryFilter(
                "server_name",
                "Only virtual hosts answering this server name (exactly as written).",
                lambda e, v: v in e.server_names,
                str.lower,
            ),
            QueryFilter(
                "upstream",
                "Only virtual hosts proxying to this upstream (id).",
                lambda e, v: v in _vhost_upstreams(e),
            ),
            QueryFilter(
                "certificate",
                "Only virtual hosts using this certificate (id).",
                lambda e, v: e.tls.certificate == v,
            ),
            QueryFilter("enabled", "true or false.", lambda e, v: e.enabled is v, _bool),
        ),
    ),
    Resource(
        StreamProxy,
        "streams",
        "stream",
        True,
        Role.operator,
        (
            _NAME,
            QueryFilter(
                "upstream", "Only streams to this upstream (id).", lambda e, v: e.upstream == v
            ),
            QueryFilter("port", "Only streams on this port.", lambda e, v: e.port == v, _int),
        ),
    ),
    Resource(
        Certificate,
        "certificates",
        "certificate",
        True,
        Role.operator,
        (
            _NAME,
            QueryFilter(
                "server_name",
                "Only certificates covering this name (exactly as written).",
                lambda e, v: v in e.names,
                str.lower,
            ),
        ),
    ),
    Resource(AccessList, "access-lists", "access list", True, Role.operator, (_NAME,)),
)

SINGULAR = {r.collection: r.singular for r in RESOURCES}
"""``virtual_hosts`` -> ``virtual host``, for messages."""


def apply_filters(
    resource: Resource, entities: list[Any], query: Mapping[str, list[str]]
) -> list[Any]:
    """Entities matching every given filter (a filter given twice matches either value);
    unknown or malformed filters are a 422 naming the parameter."""
    known = {f.name: f for f in resource.filters}
    errors: list[FieldError] = []
    for key in query:
        if key not in known:
            allowed = ", ".join(sorted(known))
            reason = f"is not a filter of {resource.path} (filters: {allowed})"
            errors.append(FieldError(field=f"query.{key}", reason=reason))
    if errors:
        raise validation_problem(errors, "the query")
    wanted: list[tuple[QueryFilter, list[Any]]] = []
    for key, values in query.items():
        flt = known[key]
        try:
            wanted.append((flt, [flt.parse(v) for v in values]))
        except ValueError as exc:
            errors.append(FieldError(field=f"query.{key}", reason=str(exc)))
    if errors:
        raise validation_problem(errors, "the query")
    return [e for e in entities if all(any(f.match(e, v) for v in vs) for f, vs in wanted)]
