"""Edits of one document: validate everything first, write after, in one transaction.

Every function here runs inside :meth:`crdt.documents.Document.edit` (so inside
``PersistedDoc.commit``): it reads what it needs, refuses with an :class:`ApiProblem`
before writing anything, then writes. A refused edit therefore leaves no update behind.

With a :class:`~crdt.schema.Stamp` (the API always gives one), a write that changed
something also records who made it (``changed_by``/``changed_at`` and the document's
audit log). Those two fields are read-only: a body may carry them (a ``GET`` echoed back)
and they are ignored.

Cross-entity rules (a virtual host's upstream must exist, a workspace's organization...)
are checked by comparing the problems before and after the edit (of the part of the
document the edit can affect, :mod:`node.api.scope`): only problems the edit
*introduces* refuse it, so an entity left dangling by a peer's concurrent delete can
still be edited (and repaired).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crdt.documents import Document
from crdt.schema import (
    STAMP_FIELDS,
    Entity,
    FieldError,
    Invalid,
    Problem,
    Stamp,
    from_crdt,
    new_id,
    to_crdt,
)
from crdt.schema.names import check_entity_id
from node.api.cache import State
from node.api.problems import ApiProblem, validation_problem
from node.api.resources import SINGULAR, Resource
from node.api.validation import canonical, validate_entity

__all__ = ["Checker", "Outcome", "Rules", "create", "delete", "patch", "put"]

Checker = Callable[[State], list[Problem]]


@dataclass(frozen=True)
class Rules:
    """What an edit needs besides the document: the valid entities (``state``, from the
    cache) and the cross-entity rules of the document (``checker``)."""

    checker: Checker
    state: Callable[[Document], State]
    narrow: Callable[[State, str, str], State] | None = None
    """What an edit of (collection, id) can affect (see :mod:`node.api.scope`)."""

    def new_problems(
        self, before: State, after: State, collection: str, ident: str
    ) -> list[Problem]:
        """Problems in ``after`` that ``before`` did not have."""
        if self.narrow is not None:
            before = self.narrow(before, collection, ident)
            after = self.narrow(after, collection, ident)
        known = {(p.collection, p.id, p.field) for p in self.checker(before)}
        return [p for p in self.checker(after) if (p.collection, p.id, p.field) not in known]


@dataclass(frozen=True)
class Outcome:
    id: str
    entity: Entity | None
    created: bool = False
    fields: list[str] = field(default_factory=list)
    name: str | None = None
    """The entity's name (for a deletion: the name it had)."""


def writable(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without the read-only stamp fields (ignored in input)."""
    return {k: v for k, v in body.items() if k not in STAMP_FIELDS}


def _name(entity: Any) -> str | None:
    name = getattr(entity, "name", None)
    return name if isinstance(name, str) else None


def stored_plain(found: Entity | Invalid | None) -> dict[str, Any] | None:
    """What is stored, as plain values (None when absent or not a map)."""
    if isinstance(found, Entity):
        return to_crdt(found)
    if isinstance(found, Invalid) and isinstance(found.raw, Mapping):
        plain = from_crdt(found.raw)
        return plain if isinstance(plain, dict) else None
    return None


def not_found(res: Resource, ident: str) -> ApiProblem:
    return ApiProblem(404, "not-found", f"{res.singular} {ident!r} does not exist")


def _with(state: State, collection: str, ident: str, entity: Entity | None) -> State:
    """``state`` with one entity replaced or removed (only that collection is copied)."""
    items = dict(state.get(collection, {}))
    if entity is None:
        items.pop(ident, None)
    else:
        items[ident] = entity
    return {**state, collection: items}


def _check_name(res: Resource, state: State, entity: Entity, previous: Any) -> None:
    name = getattr(entity, "name", None)
    if name is None or getattr(previous, "name", None) == name:
        return
    clash = next(
        (
            other
            for other in state.get(res.collection, {}).values()
            if other.id != entity.id and getattr(other, "name", None) == name
        ),
        None,
    )
    if clash is not None:
        raise ApiProblem(
            409,
            "name-taken",
            f"the name {name!r} is taken by {res.singular} {clash.id}; names are unique",
            [FieldError(field="name", reason=f"is already used by {res.singular} {clash.id}")],
        )


def _check_references(res: Resource, rules: Rules, state: State, entity: Entity) -> None:
    after = _with(state, res.collection, entity.id, entity)
    problems = rules.new_problems(state, after, res.collection, entity.id)
    if not problems:
        return
    errors = [
        FieldError(
            field=p.field if (p.collection, p.id) == (res.collection, entity.id) else p.path,
            reason=p.reason,
        )
        for p in problems
    ]
    raise validation_problem(errors)


def _write(
    doc: Document,
    res: Resource,
    rules: Rules,
    entity: Entity,
    previous: Any,
    stamp: Stamp | None,
) -> Outcome:
    state = rules.state(doc)
    _check_name(res, state, entity, previous)
    _check_references(res, rules, state, entity)
    fields = doc.put(entity, stamp)
    now = doc.get(res.kind, entity.id)
    shown = now if isinstance(now, Entity) else entity
    return Outcome(entity.id, shown, previous is None, fields, _name(shown))


def _label(state: State, collection: str, ident: str) -> str:
    """``virtual host 'shop' (id)`` for messages."""
    what = SINGULAR.get(collection, collection)
    name = getattr(state.get(collection, {}).get(ident), "name", None)
    return f"{what} {name!r} ({ident})" if name else f"{what} {ident}"


def _checked_id(value: Any) -> str:
    try:
        return check_entity_id(value)
    except ValueError as exc:
        raise validation_problem([FieldError(field="id", reason=str(exc))]) from None


def create(
    doc: Document,
    res: Resource,
    rules: Rules,
    body: Mapping[str, Any],
    stamp: Stamp | None = None,
) -> Outcome:
    """POST: a fresh id unless the body gives one (then it must be free)."""
    body = writable(body)
    ident = _checked_id(body["id"]) if "id" in body else new_id()
    if doc.get(res.kind, ident) is not None:
        raise ApiProblem(
            409,
            "exists",
            f"{res.singular} {ident!r} already exists; PUT replaces it",
            [FieldError(field="id", reason="is already taken")],
        )
    entity = validate_entity(res.kind, {**body, "id": ident}, None)
    return _write(doc, res, rules, entity, None, stamp)


def put(
    doc: Document,
    res: Resource,
    rules: Rules,
    ident: str,
    body: Mapping[str, Any],
    stamp: Stamp | None = None,
) -> Outcome:
    """PUT: create or replace the known fields (unknown stored fields are kept)."""
    body = writable(body)
    ident = _checked_id(ident)
    if "id" in body and body["id"] != ident:
        err = FieldError(field="id", reason=f"does not match the id in the path ({ident})")
        raise validation_problem([err])
    found = doc.get(res.kind, ident)
    entity = validate_entity(res.kind, {**body, "id": ident}, stored_plain(found))
    return _write(doc, res, rules, entity, found, stamp)


def patch(
    doc: Document,
    res: Resource,
    rules: Rules,
    ident: str,
    changes: Mapping[str, Any],
    stamp: Stamp | None = None,
) -> Outcome:
    """PATCH: replace the named top-level fields; the result must validate."""
    changes = writable(changes)
    found = doc.get(res.kind, ident)
    if found is None:
        raise not_found(res, ident)
    stored = stored_plain(found) or {}
    if "id" in changes and changes["id"] != ident:
        raise validation_problem([FieldError(field="id", reason="cannot be changed")])
    entity = validate_entity(res.kind, {**stored, **changes, "id": ident}, stored, changes.keys())
    state = rules.state(doc)
    _check_name(res, state, entity, found)
    _check_references(res, rules, state, entity)
    new = to_crdt(entity)
    fields = sorted(
        k
        for k in changes
        if k != "id" and (k not in stored or canonical(stored[k]) != canonical(new[k]))
    )
    written = doc.patch(res.kind, ident, changes, stamp)
    now = doc.get(res.kind, ident)
    shown = now if isinstance(now, Entity) else written
    return Outcome(ident, shown, False, fields, _name(shown))


def delete(
    doc: Document,
    res: Resource,
    rules: Rules,
    ident: str,
    extra_check: Callable[[], None] | None = None,
    stamp: Stamp | None = None,
) -> Outcome:
    """DELETE: refused (409) while other entities still refer to it."""
    found = doc.get(res.kind, ident)
    if found is None:
        raise not_found(res, ident)
    state = rules.state(doc)
    after = _with(state, res.collection, ident, None)
    problems = rules.new_problems(state, after, res.collection, ident)
    if problems:
        errors = [
            FieldError(field=p.path, reason=f"refers to this {res.singular}") for p in problems
        ]
        users = sorted({_label(state, p.collection, p.id) for p in problems})
        raise ApiProblem(
            409,
            "still-referenced",
            f"{_label(state, res.collection, ident)} is still used by {', '.join(users)}; "
            "change those first",
            errors,
        )
    if extra_check is not None:
        extra_check()
    doc.delete(res.kind, ident, stamp)
    name = _name(found) if isinstance(found, Entity) else _name_of_raw(found)
    return Outcome(ident, None, name=name)


def _name_of_raw(found: Invalid) -> str | None:
    plain = stored_plain(found) or {}
    name = plain.get("name")
    return name if isinstance(name, str) else None
