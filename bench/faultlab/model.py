"""Records shared by the workload, the watchers, the fault driver and the checker, and how
an edited field's value maps to the unique *token* that identifies the edit that wrote it.

Every value the workload writes is unique (it embeds the edit's sequence number), so the
final value of a field names exactly one write: the checker needs nothing else to tell
which edit won.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FIELDS",
    "Edit",
    "FaultRecord",
    "MemberEvent",
    "Observation",
    "server_token",
    "token_of",
    "value_for",
]

WORKSPACE = "default"
FIELDS: dict[str, tuple[str, ...]] = {
    "vhosts": ("description", "locations", "response_headers"),
    "upstreams": ("description", "servers"),
}
"""The fields the workload edits, per collection (path segment of the API)."""
FAULT_HEADER = "X-Fault"
MISSING = "<missing>"


def server_token(seq: int) -> str:
    """A unique upstream server address for edit ``seq`` (127.0.0.0/8 holds 16M)."""
    if not 0 < seq < 1 << 24:
        raise ValueError("sequence number out of range")
    return f"127.{(seq >> 16) & 255}.{(seq >> 8) & 255}.{seq & 255}:9000"


def value_for(kind: str, name: str, token: str) -> Any:
    """The API value of field ``name`` of a ``kind`` entity that carries ``token``."""
    if name == "description":
        return token
    if kind == "vhosts" and name == "locations":
        return [{"path": "/", "action": "return", "status": 200, "text": token}]
    if kind == "vhosts" and name == "response_headers":
        return {FAULT_HEADER: token}
    if kind == "upstreams" and name == "servers":
        return [{"address": token}]
    raise ValueError(f"the workload does not edit {kind}.{name}")


def token_of(kind: str, name: str, value: Any) -> str:
    """The token a stored value carries (inverse of :func:`value_for`); MISSING if none."""
    try:
        if name == "description":
            return str(value) if value else MISSING
        if kind == "vhosts" and name == "locations":
            return str(value[0]["text"])
        if kind == "vhosts" and name == "response_headers":
            return str(value[FAULT_HEADER])
        if kind == "upstreams" and name == "servers":
            return str(value[0]["address"])
    except (KeyError, IndexError, TypeError):
        return MISSING
    return MISSING


@dataclass
class Edit:
    """One write the workload attempted (or the set-up made: ``op == "init"``)."""

    seq: int
    node: str
    op: str
    """``init``, ``patch``, ``put`` (several fields at once) or ``create``."""
    kind: str
    entity: str
    """The entity id; for ``create`` the new entity's name until the answer gives its id."""
    tokens: dict[str, str]
    """Field -> the token written."""
    start: float
    end: float = 0.0
    status: int = 0
    outcome: str = ""
    """``acked`` (2xx), ``refused`` (an error status, or no connection: nothing written),
    ``unknown`` (a timeout or a connection lost mid-way: it may have been written)."""
    error: str = ""


@dataclass(frozen=True)
class Observation:
    """A field value a node answered with: the node held ``token`` at time ``at``."""

    node: str
    at: float
    kind: str
    entity: str
    field: str
    token: str


@dataclass(frozen=True)
class MemberEvent:
    """A member event from a node's watch stream (``event``: joined, suspect, alive, dead,
    left, updated, removed) about ``subject``, stamped by the observer at ``at``."""

    observer: str
    subject: str
    event: str
    at: float


@dataclass
class FaultRecord:
    """One injected fault: the nodes whose reachability it impairs, and when."""

    kind: str
    detail: str
    start: float
    touched: tuple[str, ...] = ()
    """Nodes that some live node cannot reach (well) while the fault lasts."""
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
