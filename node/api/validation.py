"""Input validation beyond the models: unknown fields, and echoes of stored data.

The models keep fields they do not know (``extra="allow"``) so that data written by a
newer version survives. API *input* is stricter: a field this version does not know is
refused (422 naming it), at any depth - a typo such as ``servers[0].wieght`` must not be
stored silently. One exception keeps GET-modify-PUT round trips working: a top-level field
whose value is exactly what is stored (an echo of a GET) is accepted as is, whatever it
holds (including fields written by a newer version).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from crdt.schema import Entity, FieldError, SchemaError, format_path, from_crdt, parse
from node.api.problems import validation_problem

__all__ = ["canonical", "unknown_fields", "validate_entity"]

E = TypeVar("E", bound=Entity)


def canonical(value: Any) -> str:
    """A comparable form of a JSON value (stored 443.0 equals written 443)."""
    return json.dumps(from_crdt(value), sort_keys=True, separators=(",", ":"), default=repr)


def unknown_fields(value: Any, path: str) -> list[FieldError]:
    """Every field inside ``value`` (a model, or lists/dicts of them) its model does not know."""
    out: list[FieldError] = []
    if isinstance(value, BaseModel):
        for key in value.__pydantic_extra__ or {}:
            out.append(FieldError(field=format_path([key], path), reason="is not a known field"))
        for name in type(value).model_fields:
            out.extend(unknown_fields(getattr(value, name), format_path([name], path)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            out.extend(unknown_fields(item, f"{path}[{i}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            out.extend(unknown_fields(item, format_path([str(key)], path)))
    return out


def validate_entity(
    kind: type[E],
    data: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    checked: Collection[str] | None = None,
) -> E:
    """Validate input ``data`` as ``kind``; 422 naming every bad or unknown field.

    ``stored`` is the entity as stored (plain values), for echo detection; ``checked``
    limits the unknown-field check to those top-level fields (a PATCH's changes).
    """
    names = data.keys() if checked is None else checked
    echoes = {
        k
        for k in names
        if stored is not None and k in stored and canonical(stored[k]) == canonical(data[k])
    }
    errors = [
        FieldError(field=format_path([k]), reason="is not a known field")
        for k in names
        if k not in kind.model_fields and k not in echoes
    ]
    try:
        entity = parse(kind, data)
    except SchemaError as exc:
        raise validation_problem([*exc.errors, *errors]) from None
    for name in names:
        if name in kind.model_fields and name not in echoes:
            errors.extend(unknown_fields(getattr(entity, name), format_path([name])))
    if errors:
        raise validation_problem(errors)
    return entity
