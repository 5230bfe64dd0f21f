"""A document's audit log: the last :data:`AUDIT_LIMIT` edits, with who made them.

Every stamped edit (:mod:`crdt.schema.stamp`) appends one entry to the top-level Array
``audit`` of the document it changed (the mesh document or a workspace's), in the same
transaction, and the oldest entries beyond the limit are deleted. The log replicates like
everything else, so every node serving the document can say who created, changed or
deleted what - deletions included, whose entity is gone.

Why an Array: an append-and-trim Array stays small however many edits it has seen
(Yrs merges runs of deleted items into one tombstone; about 50 KB for 200 entries),
where a Map keyed by entry would keep one tombstone per entry forever. Concurrent appends
all survive, in an order that is the same on every replica and respects causality (an
append follows everything its writer had seen); concurrent trims may leave a few entries
more or fewer than the limit for a while. The log is not desired state: render/ and the
desired-state digest never read it.
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from typing import Any, NamedTuple

from pycrdt import Array, Doc
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crdt.schema import Author, EntityId, Name, Stamp, from_crdt, new_id
from crdt.schema.stamp import ChangedAt

__all__ = ["AUDIT", "AUDIT_LIMIT", "AuditEntry", "AuditRead", "read_audit", "record"]

AUDIT = "audit"
"""Name of the top-level Array holding the log, in every document."""
AUDIT_LIMIT = 200
"""Entries kept per document."""
MAX_FIELDS = 32
"""Field names kept per entry."""


class AuditEntry(BaseModel):
    """One edit: what (``collection``, ``id``, ``name``), how (``op``, ``fields``), who
    and when."""

    model_config = ConfigDict(frozen=True, extra="allow")

    entry: EntityId
    """This entry's own unique id (replicas tell new entries from seen ones by it)."""
    op: Name
    """``created``, ``updated``, ``deleted`` (or an action such as ``renewal-requested``)."""
    collection: Name
    """The kind's collection (``virtual_hosts``, ``upstreams``...)."""
    id: EntityId
    name: Name | None = None
    """The entity's name at the time (for a deletion: the name it had)."""
    fields: tuple[Name, ...] = Field(default=(), max_length=MAX_FIELDS)
    changed_by: Author
    changed_at: ChangedAt

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def record(
    doc: Doc[Any],
    stamp: Stamp,
    op: str,
    collection: str,
    ident: str,
    name: str | None = None,
    fields: Sequence[str] = (),
    limit: int = AUDIT_LIMIT,
) -> AuditEntry:
    """Append an entry to ``doc``'s log and trim it to ``limit`` (call inside the edit's
    transaction)."""
    entry = AuditEntry(
        entry=new_id(),
        op=op,
        collection=collection,
        id=ident,
        name=_usable(name),
        fields=tuple(fields)[:MAX_FIELDS],
        changed_by=stamp.author,
        changed_at=stamp.at,
    )
    log: Array[Any] = doc.get(AUDIT, type=Array)
    with doc.transaction():
        log.append(entry.to_json())
        extra = len(log) - limit
        if extra > 0:
            del log[0:extra]
    return entry


_NAME: TypeAdapter[str | None] = TypeAdapter(Name | None)


def _usable(name: str | None) -> str | None:
    """``name`` if it is a valid name; None for what an invalid stored entity holds (its
    deletion must still be recorded, not refused)."""
    try:
        return _NAME.validate_python(name)
    except ValidationError:
        return None


class AuditRead(NamedTuple):
    entries: list[AuditEntry]
    """Valid entries, oldest first (those in ``skip`` left out)."""
    ids: frozenset[str]
    """The ids of every entry in the log."""


def read_audit(doc: Doc[Any], skip: Container[str] = frozenset()) -> AuditRead:
    """The log; entries that do not validate are left out, and so are those whose id is
    in ``skip`` (not even validated: a follower reads only what is new). Never raises."""
    try:
        with doc.transaction():
            raw = json.loads(str(doc.get(AUDIT, type=Array)))
    except (ValueError, TypeError, RuntimeError):
        return AuditRead([], frozenset())
    items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
    ids = frozenset(str(item.get("entry")) for item in items)
    out: list[AuditEntry] = []
    for item in items:
        if str(item.get("entry")) in skip:
            continue
        try:
            out.append(AuditEntry.model_validate(from_crdt(item)))
        except (ValidationError, ValueError, TypeError, RecursionError):
            continue
    return AuditRead(out, ids)
