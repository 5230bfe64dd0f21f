"""The boundary between stored documents and models.

pycrdt gives numbers back as floats (443 -> 443.0) and bytes as ``bytearray``;
:func:`from_crdt` undoes that, without importing pycrdt. Readers use :func:`read_entity` /
:func:`read_collection`, which never raise: whatever a peer or an older version wrote
that does not validate comes back as an :class:`Invalid` to skip and report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from crdt.schema.base import Entity
from crdt.schema.errors import FieldError, SchemaError, field_errors

__all__ = ["Invalid", "from_crdt", "parse", "read_collection", "read_entity", "to_crdt"]

M = TypeVar("M", bound=Entity)
_MAX_EXACT = 2**53
_MAX_DEPTH = 32


def from_crdt(value: Any, _depth: int = 0) -> Any:
    """Plain values as the schema expects them: whole floats -> int, bytearray -> bytes,
    tuples -> lists, mapping keys -> str. Other values pass through unchanged."""
    if _depth > _MAX_DEPTH:
        raise ValueError("is nested too deeply")
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_EXACT:
            return int(value)
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping):
        return {str(k): from_crdt(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_crdt(v, _depth + 1) for v in value]
    return value


def to_crdt(entity: Entity) -> dict[str, Any]:
    """The plain dict to store: JSON types only, unknown fields included."""
    return entity.model_dump(mode="json")


@dataclass(frozen=True)
class Invalid:
    """An entity that did not validate: skip it and report ``errors``."""

    kind: str
    id: str | None
    errors: tuple[FieldError, ...]
    raw: Any

    @property
    def path(self) -> str:
        """The first failing field, e.g. ``locations[0].upstream``."""
        return self.errors[0]["field"] if self.errors else "(entity)"

    @property
    def reason(self) -> str:
        return self.errors[0]["reason"] if self.errors else "is invalid"

    def __str__(self) -> str:
        what = f"{self.kind} {self.id}" if self.id else self.kind
        return f"{what}: " + "; ".join(f"{e['field']}: {e['reason']}" for e in self.errors)


def _invalid(model: type[Entity], raw: Any, key: str | None, field: str, reason: str) -> Invalid:
    return Invalid(model.__name__, _id_of(raw, key), (FieldError(field=field, reason=reason),), raw)


def _id_of(raw: Any, key: str | None) -> str | None:
    if key is not None:
        return key
    if isinstance(raw, Mapping):
        ident = raw.get("id")
        if isinstance(ident, str):
            return ident[:64]
    return None


def read_entity(model: type[M], raw: Any, key: str | None = None) -> M | Invalid:
    """Validate what was read from a document. Never raises.

    ``key`` is the collection key the entity was stored under; it must equal its ``id``.
    """
    try:
        if not isinstance(raw, Mapping):
            return _invalid(model, raw, key, "(entity)", "must be a map of fields")
        data = from_crdt(raw)
        if key is not None and "id" not in data:
            data["id"] = key
        entity = model.model_validate(data)
    except ValidationError as exc:
        return Invalid(model.__name__, _id_of(raw, key), tuple(field_errors(exc)), raw)
    except (ValueError, TypeError, RecursionError) as exc:
        return _invalid(model, raw, key, "(entity)", f"could not be read ({exc})")
    if key is not None and entity.id != key:
        return _invalid(model, raw, key, "id", f"does not match the key it is stored under ({key})")
    return entity


def read_collection(model: type[M], raw: Mapping[str, Any]) -> tuple[dict[str, M], list[Invalid]]:
    """Read a collection map ``{id: fields}``: the valid entities and the invalid ones."""
    good: dict[str, M] = {}
    bad: list[Invalid] = []
    for key, value in raw.items():
        result = read_entity(model, value, str(key))
        if isinstance(result, Invalid):
            bad.append(result)
        else:
            good[result.id] = result
    return good, bad


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate input (an API body): the model, or :class:`SchemaError` naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaError.from_validation_error(exc, prefix) from None
