"""Cross-entity rules: references that must exist and listeners that must not clash.

Entities validate on their own; whether a vhost's upstream exists depends on the whole
workspace, so it is checked here over a :class:`WorkspaceState` of valid entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from crdt.schema.base import Entity
from crdt.schema.certificate import AccessList, Certificate
from crdt.schema.errors import FieldError
from crdt.schema.stream import StreamProxy
from crdt.schema.upstream import Upstream
from crdt.schema.values import STREAM_HASH_VARS
from crdt.schema.vhost import VirtualHost
from crdt.schema.workspace import MeshSettings

__all__ = ["Collection", "Problem", "WorkspaceState", "validate_references"]

Collection = Literal["upstreams", "virtual_hosts", "streams", "certificates", "access_lists"]
_VAR = re.compile(r"\$([a-z0-9_]+)")


@dataclass(frozen=True)
class WorkspaceState:
    """One workspace's valid entities, keyed by id (what render/ takes as input)."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    virtual_hosts: dict[str, VirtualHost] = field(default_factory=dict)
    streams: dict[str, StreamProxy] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    access_lists: dict[str, AccessList] = field(default_factory=dict)

    @classmethod
    def of(cls, entities: Iterable[Entity]) -> WorkspaceState:
        """Group entities by kind."""
        state = cls()
        for entity in entities:
            getattr(state, entity.COLLECTION)[entity.id] = entity
        return state

    def without(self, problems: Iterable[Problem]) -> WorkspaceState:
        """A copy without the entities that have problems (skip-and-report)."""
        drop: dict[str, set[str]] = {}
        for p in problems:
            drop.setdefault(p.collection, set()).add(p.id)
        changes = {
            name: {k: v for k, v in getattr(self, name).items() if k not in ids}
            for name, ids in drop.items()
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class Problem:
    """A cross-entity rule broken by entity ``collection``/``id`` at ``field``."""

    collection: str
    id: str
    field: str
    reason: str

    @property
    def path(self) -> str:
        """Full path, e.g. ``virtual_hosts.web.locations[0].upstream``."""
        return f"{self.collection}.{self.id}.{self.field}"

    def as_field_error(self) -> FieldError:
        return FieldError(field=self.path, reason=self.reason)


def validate_references(
    state: WorkspaceState, settings: MeshSettings | None = None
) -> list[Problem]:
    """Every broken reference or clash in ``state``; empty when all is well.

    With ``settings``, entry points must exist and stream ports must not clash with them.
    """
    out: list[Problem] = []

    def bad(collection: str, ident: str, where: str, reason: str) -> None:
        out.append(Problem(collection, ident, where, reason))

    for name in ("upstreams", "virtual_hosts", "streams", "certificates", "access_lists"):
        for key, entity in getattr(state, name).items():
            if key != entity.id:
                bad(name, key, "id", f"does not match the key it is stored under ({key})")

    for vid, vh in state.virtual_hosts.items():
        for i, loc in enumerate(vh.locations):
            if loc.upstream is not None and loc.upstream not in state.upstreams:
                bad(
                    "virtual_hosts",
                    vid,
                    f"locations[{i}].upstream",
                    _missing("upstream", loc.upstream),
                )
        cert = vh.tls.certificate
        if cert is not None and cert not in state.certificates:
            bad("virtual_hosts", vid, "tls.certificate", _missing("certificate", cert))
        if vh.access_list is not None and vh.access_list not in state.access_lists:
            bad("virtual_hosts", vid, "access_list", _missing("access list", vh.access_list))
        if settings is not None:
            eps = settings.entry_points
            for i, ep in enumerate(vh.entry_points):
                if ep not in eps:
                    bad("virtual_hosts", vid, f"entry_points[{i}]", _missing("entry point", ep))
            protocols = {eps[ep].protocol for ep in vh.entry_points if ep in eps}
            if vh.tls.mode != "off" and "https" not in protocols:
                bad("virtual_hosts", vid, "entry_points", "TLS needs an https entry point")
            if vh.tls.mode == "off" and "http" not in protocols and protocols:
                bad("virtual_hosts", vid, "tls.mode", "https entry points need TLS")

    listeners: list[tuple[str, str | None, int, str]] = []
    if settings is not None:
        for ep_name, entry in settings.entry_points.items():
            listeners.append(("tcp", entry.address, entry.port, f"entry point {ep_name!r}"))
    for sid, st in state.streams.items():
        up = state.upstreams.get(st.upstream)
        if up is None:
            bad("streams", sid, "upstream", _missing("upstream", st.upstream))
        elif up.method == "ip_hash":
            bad("streams", sid, "upstream", f"upstream {st.upstream!r} uses ip_hash (HTTP only)")
        elif up.hash_key is not None:
            http_only = [v for v in _VAR.findall(up.hash_key) if v not in STREAM_HASH_VARS]
            if http_only:
                reason = f"upstream {st.upstream!r} hashes on HTTP-only ${http_only[0]}"
                bad("streams", sid, "upstream", reason)
        if st.access_list is not None and st.access_list not in state.access_lists:
            bad("streams", sid, "access_list", _missing("access list", st.access_list))
        clash = next(
            (
                who
                for proto, addr, port, who in listeners
                if proto == st.protocol
                and port == st.port
                and (addr is None or st.address is None or addr == st.address)
            ),
            None,
        )
        if clash is not None:
            bad("streams", sid, "port", f"{st.protocol} port {st.port} is already used by {clash}")
        else:
            listeners.append((st.protocol, st.address, st.port, f"stream {sid!r}"))
    return out


def _missing(what: str, ident: str) -> str:
    return f"refers to {what} {ident!r}, which does not exist"
