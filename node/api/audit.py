"""Edits and their authors on the watch stream and in the audit endpoints.

- :func:`change_event`: the ``change`` event of the watch stream, for an edit made
  through this node's API (``origin: "local"``) or learnt from a peer (``"peer"``);
- :func:`audit_item`: one entry of a document's audit log (:mod:`crdt.audit`) as the API
  shows it;
- :class:`AuditFeed`: turns the audit entries that peers' updates bring into ``change``
  events, so that every node serving a document tells who changed what in it, not only
  the node the edit came through.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pycrdt import Doc

from crdt.audit import AuditEntry, read_audit
from crdt.documents import workspace_of
from crdt.schema import Author, iso_utc
from node.api.resources import RESOURCES

__all__ = ["AuditFeed", "audit_item", "change_event", "resource_of"]

Event = dict[str, Any]
_RESOURCE = {r.collection: r.path for r in RESOURCES}
FIRST_FILL_SKEW = timedelta(seconds=5)
"""Clock skew tolerated when telling news from history in a document's first fill."""


def resource_of(collection: str) -> str:
    """The API path segment of a collection (``virtual_hosts`` -> ``vhosts``)."""
    return _RESOURCE.get(collection, collection)


def change_event(
    *,
    origin: str,
    node: str,
    document: str,
    resource: str,
    ident: str,
    name: str | None,
    op: str,
    fields: Sequence[str],
    changed_by: Author | None,
    changed_at: datetime | None,
) -> Event:
    """A ``change`` event (``seq`` and ``at`` are added by the hub)."""
    return {
        "type": "change",
        "origin": origin,
        "node": node,
        "document": document,
        "workspace": workspace_of(document),
        "resource": resource,
        "id": ident,
        "name": name,
        "op": op,
        "fields": list(fields),
        "changed_by": changed_by.model_dump(mode="json") if changed_by is not None else None,
        "changed_at": iso_utc(changed_at) if changed_at is not None else None,
    }


def audit_item(entry: AuditEntry) -> dict[str, Any]:
    """An audit entry as ``GET .../audit`` lists it."""
    return {
        "op": entry.op,
        "resource": resource_of(entry.collection),
        "id": entry.id,
        "name": entry.name,
        "fields": list(entry.fields),
        "changed_by": entry.changed_by.model_dump(mode="json"),
        "changed_at": iso_utc(entry.changed_at) if entry.changed_at is not None else None,
    }


class _Every:
    """Contains everything: read entry ids without validating a single entry."""

    def __contains__(self, _item: object) -> bool:
        return True


@dataclass
class _Followed:
    seen: frozenset[str]
    first_fill: datetime | None
    """Set while the document has held nothing since it was followed: its first fill
    is mostly history, and only entries made after this time are news."""


class AuditFeed:
    """Audit entries new to this node, as ``change`` events (``origin: "peer"``).

    :meth:`sync` the documents this node replicates whenever that set may have changed,
    and call :meth:`changes` after every change of a document. An entry is news once:
    entries made through this node are skipped (its API announced them), and so is what
    a document held when it was first followed. When a document was empty then (a node
    joining, a workspace newly served), its first fill brings the log's history: only
    its entries stamped after following began are told (``GET .../audit`` lists it all).
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self._followed: dict[str, _Followed] = {}

    def follows(self, name: str) -> bool:
        """Whether the audit log of ``name`` is followed (see :meth:`sync`)."""
        return name in self._followed

    def sync(self, documents: Mapping[str, Doc[Any]]) -> None:
        """Follow new documents from their current content; forget those gone."""
        for name in [n for n in self._followed if n not in documents]:
            del self._followed[name]
        for name, doc in documents.items():
            if name not in self._followed:
                empty = len(doc.get_state()) <= 1
                ids = read_audit(doc, skip=_Every()).ids
                self._followed[name] = _Followed(ids, datetime.now(UTC) if empty else None)

    def changes(self, name: str, doc: Doc[Any]) -> list[Event]:
        """The events for entries of ``name`` this node has not told yet."""
        followed = self._followed.get(name)
        if followed is None:  # not synced yet: nothing to compare with
            return []
        read = read_audit(doc, skip=followed.seen)
        followed.seen = read.ids
        since = followed.first_fill
        if since is not None and len(doc.get_state()) > 1:
            followed.first_fill = None
        return list(self._events(name, read.entries, since))

    def _events(
        self, name: str, entries: Sequence[AuditEntry], since: datetime | None
    ) -> Iterator[Event]:
        for entry in entries:
            if entry.changed_by.node == self.node:
                continue
            if since is not None and (
                entry.changed_at is None or entry.changed_at < since - FIRST_FILL_SKEW
            ):
                continue
            yield change_event(
                origin="peer",
                node=entry.changed_by.node,
                document=name,
                resource=resource_of(entry.collection),
                ident=entry.id,
                name=entry.name,
                op=entry.op,
                fields=entry.fields,
                changed_by=entry.changed_by,
                changed_at=entry.changed_at,
            )
