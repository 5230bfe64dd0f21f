"""The fleet as the console sees it: members from ``GET /v1/nodes`` and the convergence
line that sums them up ("3/3 nodes on state 9f3c…, 1 quarantined: shop - reason").

Pure functions over plain data, so they are tested without a terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Member", "Quarantine", "as_int", "convergence_line", "merge_member_event", "short"]

_GONE = ("left", "revoked")
"""States that no longer count towards convergence."""


def short(digest: str, width: int = 8) -> str:
    """A digest cut to ``width`` characters with an ellipsis; ``-`` when empty."""
    if not digest:
        return "-"
    return digest if len(digest) <= width else digest[:width] + "…"


@dataclass(frozen=True, slots=True)
class Member:
    """One member and what it publishes about itself (its metadata)."""

    name: str
    key: str = ""
    address: str = ""
    state: str = "unknown"
    labels: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    nginx: str = ""
    apply: str = ""
    quarantined: int = 0
    reason: str = ""
    revision: str = ""
    digest: str = ""
    """Digest of the desired state its tree was rendered from (equal once converged)."""
    workspaces: Mapping[str, str] = field(default_factory=dict)
    """Workspace id -> digest of that workspace's state as this node applied it."""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Member:
        meta = data.get("metadata") or {}
        labels = data.get("labels") or {}
        return cls(
            name=str(data.get("name", "")),
            key=str(data.get("key", "")),
            address=str(data.get("address", "")),
            state=str(data.get("state", "unknown")),
            labels={str(k): str(v) for k, v in labels.items()},
            version=str(meta.get("version", "")),
            nginx=str(meta.get("nginx", "")),
            apply=str(meta.get("apply", "")),
            quarantined=as_int(meta.get("quarantined")),
            reason=str(meta.get("reason", "")),
            revision=str(meta.get("revision", "")),
            digest=str(meta.get("state", "")),
            workspaces=_strings(meta.get("workspaces")),
        )

    @property
    def labels_text(self) -> str:
        return ",".join(f"{k}={v}" if v else k for k, v in sorted(self.labels.items())) or "-"

    @property
    def apply_text(self) -> str:
        """``ok``, ``quarantined 2``, ``failed``... and nginx's state when it is not up."""
        text = self.apply or "-"
        if self.apply == "quarantined" and self.quarantined:
            text = f"quarantined {self.quarantined}"
        return text


_FROM_METADATA = (
    "version", "nginx", "apply", "quarantined", "reason", "revision", "digest", "workspaces",
)  # fmt: skip
"""The fields of :class:`Member` that come from its metadata (the rest from the API)."""


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def as_int(value: Any) -> int:
    """``value`` as an int; 0 for what is not one (fields of peers' events)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def merge_member_event(members: list[Member], event: Mapping[str, Any]) -> list[Member]:
    """The members after a daemon's ``member`` event (state, address, metadata); a member
    not listed yet is added. Events of the API (``op``: labels, revoked) change nothing
    here: a re-read of ``/v1/nodes`` follows them."""
    name = str(event.get("node", ""))
    state = event.get("state")
    if not name or not isinstance(state, str):
        return members
    meta = event.get("metadata")
    updated: list[Member] = []
    found = False
    for m in members:
        if m.name == name:
            found = True
            m = replace(m, state=state if m.state != "revoked" else m.state)
            if event.get("address"):
                m = replace(m, address=str(event["address"]))
            if isinstance(meta, dict) and meta:
                fresh = Member.from_api({"name": name, "metadata": meta})
                m = replace(m, **{f: getattr(fresh, f) for f in _FROM_METADATA})
        updated.append(m)
    if not found:
        updated.append(
            Member.from_api(
                {
                    "name": name,
                    "key": event.get("key", ""),
                    "address": event.get("address", ""),
                    "state": state,
                    "metadata": meta if isinstance(meta, dict) else {},
                }
            )
        )
        updated.sort(key=lambda m: m.name)
    return updated


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A unit one node left out of its nginx tree, and why (the local node's status)."""

    unit: str
    reason: str


def _quarantine_text(
    m: Member, local: str, units: Iterable[Quarantine], names: Mapping[str, str]
) -> str:
    if m.name == local:
        parts = [f"{names.get(q.unit, q.unit)} - {q.reason}" for q in units]
        if parts:
            return "; ".join(parts)
    count = f"{m.quarantined} unit{'s' if m.quarantined != 1 else ''}"
    return f"{m.name} - {m.reason or count}"


def convergence_line(
    members: Iterable[Member],
    *,
    local: str = "",
    quarantined: Iterable[Quarantine] = (),
    names: Mapping[str, str] | None = None,
    workspace_names: Mapping[str, str] | None = None,
) -> str:
    """One line: how many counted nodes serve the most common desired state, then who is
    quarantined, failed, suspect or dead. ``quarantined`` and ``names`` (unit -> a name
    people know) describe the local node's quarantine, which only it knows in detail;
    ``workspace_names`` (id -> name) names the workspaces nodes are behind on."""
    counted = [m for m in members if m.state not in _GONE]
    if not counted:
        return "no members yet"
    units = list(quarantined)
    names = names or {}
    alive = [m for m in counted if m.state == "alive"]
    if any(m.workspaces for m in alive):
        line = _per_workspace(alive, len(counted), workspace_names or {})
    else:
        digests = Counter(m.digest for m in alive if m.digest)
        if digests:
            top, on = digests.most_common(1)[0]
            line = f"{on}/{len(counted)} nodes on state {short(top)}"
        else:
            line = f"0/{len(counted)} nodes have applied a state yet"
        if len(digests) > 1:
            line += f", {len(digests) - 1} other state{'s' if len(digests) > 2 else ''}"
    quarantined_members = [m for m in counted if m.apply == "quarantined"]
    if quarantined_members:
        what = "; ".join(_quarantine_text(m, local, units, names) for m in quarantined_members)
        line += f", {len(quarantined_members)} quarantined: {what}"
    failed = [m for m in counted if m.apply == "failed"]
    if failed:
        what = "; ".join(f"{m.name} - {m.reason or 'see its node detail'}" for m in failed)
        line += f", {len(failed)} failed: {what}"
    for state in ("suspect", "dead"):
        gone = sorted(m.name for m in counted if m.state == state)
        if gone:
            line += f", {len(gone)} {state}: {', '.join(gone)}"
    return line


def _per_workspace(alive: list[Member], counted: int, names: Mapping[str, str]) -> str:
    """Nodes serve different workspaces, so whole-state digests differ by design: a node
    is current when each workspace it serves is on that workspace's most common state."""
    by_ws: dict[str, Counter[str]] = {}
    for m in alive:
        for ws, digest in m.workspaces.items():
            by_ws.setdefault(ws, Counter())[digest] += 1
    top = {ws: c.most_common(1)[0][0] for ws, c in by_ws.items()}
    current = [m for m in alive if m.digest and all(top[w] == d for w, d in m.workspaces.items())]
    if len(top) == 1:
        (digest,) = top.values()
        line = f"{len(current)}/{counted} nodes on state {short(digest)}"
    else:
        line = f"{len(current)}/{counted} nodes current on {len(top)} workspaces"
    behind = sorted(names.get(ws, ws) for ws, c in by_ws.items() if len(c) > 1)
    if behind:
        line += f", behind on {', '.join(behind)}"
    return line
