"""Typed documents over pycrdt: the mesh document and one document per workspace.

Layout (docs/state.md): one top-level Map per collection, named by the kind's
``COLLECTION`` (``virtual_hosts``, ``upstreams``...); inside it one nested Map per entity,
keyed by the entity's id; inside that, one key per field. Fields therefore merge
independently: two peers editing different fields of one vhost both win. A field's value
is stored whole (a list of servers, a dict of headers, the TLS settings are each one
JSON value): concurrent writes to the same field resolve to one of them, chosen by
pycrdt's deterministic rule (the higher client id), never a mix.

Singleton kinds (:class:`~crdt.schema.MeshSettings`) keep their fields directly in their
top-level Map: a top-level Map is identified by its name, so two peers that write the
settings before ever hearing of each other still merge field by field (a nested Map
created twice under one key would keep only one of the two).

Every mutation validates first and writes after, inside one ``doc.transaction()``; the
methods are synchronous, so a transaction is never held across an await. Run them inside
:meth:`crdt.store.PersistedDoc.commit` (see :meth:`Document.edit`) so the update is on
disk before the edit is acknowledged.

Mutations given a :class:`~crdt.schema.Stamp` (every API edit) also record who made a
change: ``changed_by``/``changed_at`` in the entity and an entry in the document's audit
log (:mod:`crdt.audit`) - only when something changed.

Readers never raise: what a peer or an older version wrote that does not validate comes
back as :class:`~crdt.schema.Invalid` to skip and report. Nothing but :meth:`delete`
removes a key, so fields written by a newer version survive every read, put and patch.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Self, TypeVar, cast

from pycrdt import Array, Doc, Map, Text

from crdt.audit import AuditEntry, read_audit, record
from crdt.schema import (
    STAMP_FIELDS,
    AccessList,
    Certificate,
    Entity,
    FieldError,
    Invalid,
    MeshSettings,
    Organization,
    SchemaError,
    Stamp,
    StreamProxy,
    Upstream,
    VirtualHost,
    Workspace,
    WorkspaceState,
    from_crdt,
    new_id,
    parse,
    read_entity,
    to_crdt,
)
from crdt.store import PersistedDoc

__all__ = [
    "MESH_DOCUMENT",
    "MESH_KINDS",
    "SINGLETON_KINDS",
    "WORKSPACE_KINDS",
    "Document",
    "DocumentError",
    "EntityMemo",
    "MeshDocument",
    "NotFound",
    "UnknownKind",
    "WorkspaceDocument",
    "WorkspaceRead",
    "workspace_document",
    "workspace_of",
]

E = TypeVar("E", bound=Entity)
R = TypeVar("R")

MESH_DOCUMENT = "mesh"
"""Name of the mesh-wide document (in the store and on the wire)."""


def workspace_document(workspace_id: str) -> str:
    """Name of a workspace's document: ``workspace:<id>``."""
    return f"{_WORKSPACE_PREFIX}{workspace_id}"


def workspace_of(document: str) -> str | None:
    """The workspace id a document name belongs to (None for the mesh document)."""
    if document.startswith(_WORKSPACE_PREFIX) and len(document) > len(_WORKSPACE_PREFIX):
        return document[len(_WORKSPACE_PREFIX) :]
    return None


_WORKSPACE_PREFIX = "workspace:"


MESH_KINDS: tuple[type[Entity], ...] = (Organization, Workspace, MeshSettings)
"""Kinds of the mesh document known to the schema. Trust records (admissions,
revocations, invites) and node assignments are added with ``extra_kinds``."""

WORKSPACE_KINDS: tuple[type[Entity], ...] = (
    Upstream,
    VirtualHost,
    StreamProxy,
    Certificate,
    AccessList,
)
"""Kinds of a workspace document, in the order :class:`WorkspaceState` lists them."""

SINGLETON_KINDS: tuple[type[Entity], ...] = (MeshSettings,)
"""Kinds with exactly one entity (its id is the model's default id); their fields live
directly in the top-level Map."""


class DocumentError(Exception):
    """A document operation was refused; the message is meant for the operator."""


class UnknownKind(DocumentError):
    """The kind is not stored in this document."""


class NotFound(DocumentError):
    """No entity of that kind with that id."""

    def __init__(self, kind: type[Entity], ident: str) -> None:
        self.kind = kind
        self.id = ident
        super().__init__(f"{kind.__name__} {ident!r} does not exist")


def _plain(value: Any) -> Any:
    """A stored value as plain Python (JSON types; numbers not yet converted)."""
    if isinstance(value, Map):
        return json.loads(str(value))  # ~7x faster than to_py()
    if isinstance(value, Array | Text):
        return value.to_py()
    return value


def _canonical(value: Any) -> str:
    """A comparable form: stored 443.0 equals written 443, True never equals 1."""
    return json.dumps(from_crdt(value), sort_keys=True, separators=(",", ":"), default=repr)


def _newer(stored: Any, fields: dict[str, Any]) -> bool:
    mine = fields.get("schema_version")
    ours = from_crdt(stored)
    return isinstance(ours, int) and isinstance(mine, int) and ours > mine


def _singleton_id(kind: type[Entity]) -> str:
    default = kind.model_fields["id"].default
    if not isinstance(default, str):
        raise TypeError(f"singleton kind {kind.__name__} needs a default id")
    return default


def _reject(field_name: str, reason: str) -> SchemaError:
    return SchemaError([FieldError(field=field_name, reason=reason)])


def _unstamped(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the stamp's keys (they are written only with a stamp)."""
    return {k: v for k, v in fields.items() if k not in STAMP_FIELDS}


def _name_in(raw: Any) -> str | None:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return name if isinstance(name, str) else None


class Document:
    """Typed access to a pycrdt ``Doc`` holding collections of entities.

    Cheap to construct: build one around ``PersistedDoc.doc`` for each edit (that
    document is replaced when a write to disk fails), or use :meth:`edit`.
    """

    KINDS: ClassVar[tuple[type[Entity], ...]] = ()

    def __init__(
        self, doc: Doc[Any] | None = None, extra_kinds: Iterable[type[Entity]] = ()
    ) -> None:
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        kinds: dict[str, type[Entity]] = {}
        for kind in (*self.KINDS, *extra_kinds):
            name = kind.COLLECTION
            if not name:
                raise ValueError(f"{kind.__name__} has no COLLECTION name")
            if kinds.get(name, kind) is not kind:
                raise ValueError(f"{kind.__name__} and {kinds[name].__name__} share {name!r}")
            kinds[name] = kind
        self._kinds = kinds

    @classmethod
    def edit(
        cls,
        persisted: PersistedDoc,
        fn: Callable[[Self], R],
        extra_kinds: Iterable[type[Entity]] = (),
    ) -> tuple[R, bytes | None]:
        """Run ``fn`` on this document inside ``persisted.commit``: returns what ``fn``
        returned and the update, already fsynced (None when nothing changed). Broadcast
        only that update. Mutations validate before writing, so a refused edit (an
        exception from ``fn``) normally leaves nothing behind."""
        extra = tuple(extra_kinds)
        out: builtins.list[R] = []

        def run(doc: Doc[Any]) -> None:
            out.append(fn(cls(doc, extra)))

        update = persisted.commit(run)
        return out[0], update

    # -- helpers ---------------------------------------------------------------------------

    @property
    def kinds(self) -> tuple[type[Entity], ...]:
        return tuple(self._kinds.values())

    def _check(self, kind: type[Entity]) -> None:
        if self._kinds.get(kind.COLLECTION) is not kind:
            raise UnknownKind(f"{kind.__name__} is not stored in a {type(self).__name__}")

    def _root(self, kind: type[Entity]) -> Map[Any]:
        root: Map[Any] = self.doc.get(kind.COLLECTION, type=Map)
        return root

    def _raw(self, kind: type[Entity], ident: str) -> tuple[bool, Any]:
        """(found, the stored entity as plain values)."""
        root = self._root(kind)
        if kind in SINGLETON_KINDS:
            if ident != _singleton_id(kind):
                return False, None
            raw = _plain(root)
            return bool(raw), raw
        if ident not in root:
            return False, None
        return True, _plain(root[ident])

    # -- reading (never raises for what is stored) -------------------------------------------

    def get(self, kind: type[E], ident: str) -> E | Invalid | None:
        """The entity, an :class:`Invalid` to skip and report, or None when absent."""
        self._check(kind)
        try:
            with self.doc.transaction():
                found, raw = self._raw(kind, ident)
        except (ValueError, TypeError, RuntimeError) as exc:
            reason = f"could not be read ({exc})"
            return Invalid(
                kind.__name__, ident, (FieldError(field="(entity)", reason=reason),), None
            )
        if not found:
            return None
        return read_entity(kind, raw, ident)

    def list(
        self, kind: type[E], memo: EntityMemo | None = None
    ) -> tuple[builtins.list[E], builtins.list[Invalid]]:
        """Every entity of ``kind`` sorted by id, and those that did not validate.
        ``memo``: reuse what an earlier read validated (see :class:`EntityMemo`)."""
        good, bad, _ = self._list(kind, memo)
        return good, bad

    def _list(
        self, kind: type[E], memo: EntityMemo | None
    ) -> tuple[builtins.list[E], builtins.list[Invalid], Any]:
        """:meth:`list`, plus the collection as stored (plain JSON; None if unreadable)."""
        self._check(kind)
        try:
            with self.doc.transaction():
                stored = raw = _plain(self._root(kind))
        except (ValueError, TypeError, RuntimeError) as exc:
            reason = f"could not be read ({exc})"
            err = FieldError(field="(collection)", reason=reason)
            return [], [Invalid(kind.__name__, None, (err,), None)], None
        if kind in SINGLETON_KINDS:
            raw = {_singleton_id(kind): raw} if raw else {}
        good: builtins.list[E] = []
        bad: builtins.list[Invalid] = []
        read = memo.reader(kind) if memo is not None else partial(read_entity, kind)
        for key in sorted(raw):
            result = read(raw[key], key)
            if isinstance(result, Invalid):
                bad.append(result)
            else:
                good.append(cast(E, result))
        return good, bad, stored

    def to_json(self) -> dict[str, Any]:
        """Every known collection as plain JSON (for comparing replicas, debugging)."""
        with self.doc.transaction():
            return {name: json.loads(str(self.doc.get(name, type=Map))) for name in self._kinds}

    # -- writing ---------------------------------------------------------------------------

    def create(self, kind: type[E], data: Mapping[str, Any], stamp: Stamp | None = None) -> E:
        """Validate ``data`` and store it under a fresh unique id (the only safe way to
        create: two writers never create the same key). Raises :class:`SchemaError`.
        ``stamp``: see :meth:`put`."""
        self._check(kind)
        if kind in SINGLETON_KINDS:
            raise UnknownKind(f"{kind.__name__} is a singleton: use patch()")
        if "id" in data:
            raise _reject("id", "is assigned when the entity is created")
        entity = parse(kind, {**data, "id": new_id()})
        self.put(entity, stamp)
        return entity

    def put(self, entity: Entity, stamp: Stamp | None = None) -> builtins.list[str]:
        """Store ``entity``: create it, or write only the fields that differ from what is
        stored (an edit of one field is a small update). Keys it does not carry are left
        alone. Returns the names of the fields written (sorted).

        ``changed_by``/``changed_at`` are not compared or written from ``entity``: with a
        ``stamp``, a write that changed something also writes the stamp and appends an
        entry to the audit log (:mod:`crdt.audit`); nothing changed, nothing written.

        Creating under an id some other peer may be creating at the same time loses one
        of the two whole entities: create new entities with :meth:`create`.
        """
        kind = type(entity)
        self._check(kind)
        # the API writes only valid entities
        fields = _unstamped(to_crdt(parse(kind, to_crdt(entity))))
        with self.doc.transaction():
            return self._write(kind, entity.id, fields, fields, stamp)

    def patch(
        self, kind: type[E], ident: str, changes: Mapping[str, Any], stamp: Stamp | None = None
    ) -> E:
        """Change some fields of an existing entity; returns it as now stored.

        The stored entity with ``changes`` applied must validate (else
        :class:`SchemaError`, nothing written); only the fields named in ``changes`` are
        written, and only when they differ. Unknown stored keys are kept. Raises
        :class:`NotFound` when absent (a singleton is always present). ``stamp``: see
        :meth:`put` (the stamp's own keys cannot be changed here).
        """
        self._check(kind)
        for name in changes:
            if name not in kind.model_fields:
                raise _reject(name, "is not a known field")
            if name in STAMP_FIELDS:
                raise _reject(name, "is written by the node with each change")
        if "id" in changes and changes["id"] != ident:
            raise _reject("id", "cannot be changed")
        with self.doc.transaction():
            found, raw = self._raw(kind, ident)
            if not found and kind not in SINGLETON_KINDS:
                raise NotFound(kind, ident)
            base = from_crdt(raw) if isinstance(raw, Mapping) else {}
            entity = parse(kind, {**base, **changes, "id": ident})
            dumped = to_crdt(entity)
            written = self._write(
                kind, ident, {k: dumped[k] for k in changes}, _unstamped(dumped), stamp
            )
        if written and stamp is not None:
            entity = entity.model_copy(update={"changed_by": stamp.author, "changed_at": stamp.at})
        return entity

    def delete(self, kind: type[Entity], ident: str, stamp: Stamp | None = None) -> bool:
        """Remove the entity (a concurrent edit of it elsewhere is lost: delete wins).
        Returns False when it was not there. With a ``stamp``, the deletion goes into the
        audit log (with the name the entity had)."""
        self._check(kind)
        with self.doc.transaction():
            found, raw = self._raw(kind, ident)
            if not found:
                return False
            root = self._root(kind)
            if kind in SINGLETON_KINDS:
                root.clear()
            else:
                del root[ident]
            if stamp is not None:
                record(self.doc, stamp, "deleted", kind.COLLECTION, ident, _name_in(raw))
            return True

    def audit(self) -> builtins.list[AuditEntry]:
        """This document's audit log, oldest first (:mod:`crdt.audit`)."""
        return read_audit(self.doc).entries

    def _write(
        self,
        kind: type[Entity],
        ident: str,
        fields: dict[str, Any],
        whole: dict[str, Any],
        stamp: Stamp | None,
    ) -> builtins.list[str]:
        """Write ``fields`` where they differ; a missing or non-Map entity is (re)created
        from ``whole``; a change writes ``stamp`` too and logs it. Call inside a
        transaction."""
        root = self._root(kind)
        target: Map[Any] | None
        if kind in SINGLETON_KINDS:
            target = root
        else:
            current = root.get(ident)
            target = current if isinstance(current, Map) else None
        op = "updated"
        if target is None:
            op = "updated" if ident in root else "created"  # a non-Map value is repaired
            root[ident] = Map({**whole, **(stamp.fields() if stamp is not None else {})})
            changed = sorted(whole)
        else:
            stored = _plain(target)
            changed = sorted(
                k
                for k, v in fields.items()
                if k not in stored or _canonical(stored[k]) != _canonical(v)
            )
            if "schema_version" in changed and _newer(stored.get("schema_version"), fields):
                changed.remove("schema_version")  # an older writer never lowers the version
            for k in changed:
                target[k] = fields[k]
            if changed and stamp is not None:
                for k, v in stamp.fields().items():
                    target[k] = v
        if changed and stamp is not None:
            record(self.doc, stamp, op, kind.COLLECTION, ident, _name_in(whole), changed)
        return changed


@dataclass(frozen=True)
class WorkspaceRead:
    """A workspace's valid entities and what was skipped (to report)."""

    state: WorkspaceState
    invalid: list[Invalid] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)
    """Every collection as stored (plain JSON, what :meth:`Document.to_json` gives)."""


class EntityMemo:
    """Validated entities of one document, by kind, id and stored JSON: a read with a
    memo validates only entities that changed since the previous read with it (pydantic
    costs ~0.1 ms per entity: 0.1 s a pass at 1,000 virtual hosts). Entities are frozen,
    so handing out the same object twice is safe. Holds what the last read saw, no more."""

    def __init__(self) -> None:
        self._kinds: dict[type[Entity], dict[str, tuple[bytes, Entity | Invalid]]] = {}

    def reader(self, kind: type[Entity]) -> Callable[[Any, str], Entity | Invalid]:
        """A ``read_entity`` for one pass over ``kind``'s collection."""
        before = self._kinds.get(kind, {})
        seen: dict[str, tuple[bytes, Entity | Invalid]] = {}
        self._kinds[kind] = seen

        def read(raw: Any, key: str) -> Entity | Invalid:
            text = json.dumps(raw, sort_keys=True, default=repr).encode()
            digest = hashlib.blake2b(text, digest_size=16).digest()  # not the text: memory
            cached = before.get(key)
            result = cached[1] if cached is not None and cached[0] == digest else None
            if result is None:
                result = read_entity(kind, raw, key)
            seen[key] = (digest, result)
            return result

        return read


class MeshDocument(Document):
    """The mesh-wide document: organizations, workspaces, settings; trust records and
    node assignments through ``extra_kinds``."""

    KINDS = MESH_KINDS

    def settings(self) -> MeshSettings | Invalid:
        """The mesh settings: defaults when never written, Invalid when unreadable."""
        found = self.get(MeshSettings, _singleton_id(MeshSettings))
        return MeshSettings() if found is None else found


class WorkspaceDocument(Document):
    """One workspace's document: upstreams, virtual hosts, streams, certificates' metadata
    and access lists."""

    KINDS = WORKSPACE_KINDS

    def read(self, memo: EntityMemo | None = None) -> WorkspaceRead:
        """Everything valid as a :class:`WorkspaceState`, plus what was skipped, and the
        collections as stored; ``memo``: see :meth:`list`."""
        entities: builtins.list[Entity] = []
        invalid: builtins.list[Invalid] = []
        stored: dict[str, Any] = {}
        for kind in self.KINDS:
            good, bad, raw = self._list(kind, memo)
            entities.extend(good)
            invalid.extend(bad)
            stored[kind.COLLECTION] = raw
        return WorkspaceRead(WorkspaceState.of(entities), invalid, stored)

    def snapshot(self) -> WorkspaceState:
        """The valid entities, for render/ (see :meth:`read` for what was skipped)."""
        return self.read().state
