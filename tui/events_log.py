"""Watch-stream events told as lines of the events screen: joins, failures, reloads, edits.

:func:`describe` is pure: it takes one event and what the console knew of the member
before (to tell a reload from any metadata change). Entity ids in a line are kept as
references and shown by name once the console knows the name (:meth:`EventEntry.shown`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tui.fleet import Member, as_int, short

__all__ = ["EventEntry", "describe", "link_entry", "unit_key"]

_SINGULAR = {
    "vhosts": "vhost",
    "upstreams": "upstream",
    "certificates": "certificate",
    "streams": "stream",
    "access-lists": "access list",
    "organizations": "organization",
    "workspaces": "workspace",
}


@dataclass(frozen=True, slots=True)
class EventEntry:
    """One line of the events screen."""

    at: float
    kind: str
    """join, alive, suspect, dead, left, removed, revoke, labels, reload, quarantine,
    failed, apply, edit, sync, link."""
    node: str
    text: str
    severity: str = "information"
    """information, warning or error (as Textual's notifications name them)."""
    refs: tuple[tuple[str, str], ...] = ()
    """(text in the line, ``<resource>/<id>``): shown as the entity's name when known."""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The watch-stream event itself (empty for the console's own lines)."""
    serial: int = 0
    """Position in the console's log (set when the line is added)."""

    def shown(self, names: Mapping[str, str]) -> str:
        """The line with every reference the console can name replaced by the name."""
        text = self.text
        for token, key in self.refs:
            if key in names:
                text = text.replace(token, names[key], 1)
        return text


_UNIT_KINDS = {"vhost": "vhosts", "stream": "streams"}


def unit_key(unit: str) -> str:
    """A renderer unit (``<workspace>/vhost/<id>``) as ``vhosts/<id>``."""
    _ws, _, rest = unit.partition("/")
    kind, _, entity = rest.partition("/")
    return f"{_UNIT_KINDS.get(kind, kind)}/{entity}"


def link_entry(at: float, up: bool, node: str, reason: str) -> EventEntry:
    if up:
        return EventEntry(at, "link", node, f"connected to {node or 'the daemon'}")
    return EventEntry(at, "link", node, f"connection lost: {reason}", "warning")


def describe(
    event: Mapping[str, Any],
    *,
    previous: Member | None,
    local: str,
    now: float,
) -> EventEntry | None:
    """The line for ``event``, or None for what is not worth a line (heartbeats, metadata
    changes that are neither a reload nor a failure)."""
    entry = _describe(event, previous, local, now)
    return replace(entry, raw=dict(event)) if entry is not None else None


def _describe(
    event: Mapping[str, Any], previous: Member | None, local: str, now: float
) -> EventEntry | None:
    at = _float(event.get("at"), now)
    node = str(event.get("node", ""))
    kind = event.get("type")
    if kind == "member":
        return _member(event, at, node, previous, local)
    if kind == "apply":
        return _apply(event, at, node)
    if kind == "change":
        return _change(event, at, node)
    if kind == "document":
        if event.get("origin") == "local" or as_int(event.get("changes")) > 0:
            return None  # a local edit, or a peer's told by its own change lines
        return EventEntry(at, "sync", node, f"update from a peer: {event.get('document', '?')}")
    if kind == "overflow":
        return EventEntry(at, "link", node, "fell behind the watch stream; re-reading", "warning")
    return None


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _member(
    event: Mapping[str, Any], at: float, node: str, previous: Member | None, local: str
) -> EventEntry | None:
    op = event.get("op")
    if op == "revoked":
        return EventEntry(at, "revoke", node, f"{node} was revoked", "warning")
    if op == "labels":
        return EventEntry(at, "labels", node, f"{node}'s labels changed")
    if op == "workspaces":
        return EventEntry(at, "assign", node, f"{node} now serves other workspaces")
    change = event.get("event")
    address = event.get("address") or (previous.address if previous else "")
    if change == "joined":
        return EventEntry(at, "join", node, f"{node} joined ({address or 'no address'})")
    if change == "alive":
        if previous is not None and previous.state == "alive":
            return None
        return EventEntry(at, "alive", node, f"{node} is alive")
    if change == "suspect":
        return EventEntry(at, "suspect", node, f"{node} is suspect (not answering)", "warning")
    if change == "dead":
        return EventEntry(at, "dead", node, f"{node} is dead", "error")
    if change == "left":
        return EventEntry(at, "left", node, f"{node} left the mesh")
    if change == "removed":
        return EventEntry(at, "removed", node, f"{node} was removed from the member list")
    if change == "updated" and node != local:
        meta = event.get("metadata")
        if isinstance(meta, dict):
            return _remote_status(meta, at, node, previous)
    return None


def _remote_status(
    meta: Mapping[str, Any], at: float, node: str, previous: Member | None
) -> EventEntry | None:
    if previous is None:
        return None  # nothing to compare with: the console has not seen it before
    fresh = Member.from_api({"name": node, "metadata": meta})
    before = previous
    if fresh.apply == "failed" and (before.apply != "failed" or fresh.reason != before.reason):
        return EventEntry(at, "failed", node, f"apply failed: {fresh.reason or '?'}", "error")
    if fresh.revision and fresh.revision != before.revision:
        if fresh.apply == "quarantined":
            text = f"applied revision {short(fresh.revision)} with {fresh.apply_text}"
            return EventEntry(at, "quarantine", node, text, "warning")
        return EventEntry(at, "reload", node, f"applied revision {short(fresh.revision)}")
    return None


def _apply(event: Mapping[str, Any], at: float, node: str) -> EventEntry | None:
    state = str(event.get("state", ""))
    revision = short(str(event.get("revision") or ""))
    if state == "ok":
        return EventEntry(at, "reload", node, f"applied revision {revision}")
    if state == "quarantined":
        units = [q for q in event.get("quarantined") or () if isinstance(q, dict)]
        what = "; ".join(f"{q.get('unit')} - {q.get('reason')}" for q in units) or "?"
        refs = tuple((str(q.get("unit")), unit_key(str(q.get("unit")))) for q in units)
        text = f"applied revision {revision}, quarantined: {what}"
        return EventEntry(at, "quarantine", node, text, "warning", refs)
    if state == "failed":
        message = str(event.get("nginx_message") or "").strip().splitlines()
        text = str(event.get("summary") or "failed")
        if message:
            text += f" - nginx: {message[0]}"
        return EventEntry(at, "failed", node, text, "error")
    if state:
        return EventEntry(at, "apply", node, str(event.get("summary") or state))
    return None


def _change(event: Mapping[str, Any], at: float, node: str) -> EventEntry:
    """``vhost shop updated (server_names) by alice (operator) via n2``: the entity by the
    name the event gives (the name it had then), else by id until the console knows it."""
    resource = str(event.get("resource", ""))
    entity = str(event.get("id", ""))
    what = _SINGULAR.get(resource, resource)
    op = str(event.get("op", "changed"))
    name = event.get("name")
    named = isinstance(name, str) and bool(name)
    text = f"{what} {name if named else entity} {op}"
    fields = [str(f) for f in event.get("fields") or ()]
    if op == "updated" and fields:
        text += f" ({', '.join(fields[:4])}{', ...' if len(fields) > 4 else ''})"
    author = event.get("changed_by")
    if isinstance(author, Mapping) and author.get("user"):
        text += f" by {author.get('user')}"
        if author.get("role"):
            text += f" ({author.get('role')})"
    refs = () if named else ((entity, f"{resource}/{entity}"),)
    return EventEntry(at, "edit", node, f"{text} via {node}", refs=refs)
