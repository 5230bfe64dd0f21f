"""Validation errors as short, field-named items (the API turns them into problem+json).

A pydantic ``ValidationError`` carries a location tuple and a message per failure; this
module flattens each into ``{"field": "servers[1].address", "reason": "..."}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from pydantic import ValidationError

__all__ = ["FieldError", "SchemaError", "field_errors", "format_path"]

_PLAIN_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


class FieldError(TypedDict):
    """One failure: where (a dotted path with ``[i]`` indices) and why (short, human)."""

    field: str
    reason: str


def format_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("servers", 1, "address")`` -> ``servers[1].address``.

    Integer segments become ``[i]``; keys that are not plain words (a dict key holding
    spaces or dots) are quoted as ``["..."]`` so the path stays unambiguous.
    """
    out = prefix
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif seg == "[key]":
            out += "<key>"
        elif _PLAIN_SEGMENT.match(seg):
            out += f".{seg}" if out else seg
        else:
            quoted = seg.encode("unicode_escape").decode("ascii").replace('"', '\\"')
            out += f'["{quoted}"]'
    return out


def _reason(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "value_error":
        ctx = err.get("ctx") or {}
        error = ctx.get("error")
        if error is not None:
            return str(error)
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    msg = str(err.get("msg", "is invalid"))
    return msg[:1].lower() + msg[1:]


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Flatten a pydantic ``ValidationError`` into ``FieldError`` items, in order."""
    errors = exc.errors(include_url=False, include_input=False)
    locs = [tuple(err["loc"]) for err in errors]
    out: list[FieldError] = []
    for err, loc in zip(errors, locs, strict=True):
        # pydantic adds "too short" for a sequence whose items failed: noise, not a cause
        if err["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locs
        ):
            continue
        out.append(FieldError(field=format_path(loc, prefix) or "(entity)", reason=_reason(err)))
    return out


class SchemaError(ValueError):
    """Raised by helpers that validate on behalf of a caller; carries ``FieldError`` items."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in self.errors))

    @classmethod
    def from_validation_error(cls, exc: ValidationError, prefix: str = "") -> SchemaError:
        return cls(field_errors(exc, prefix))
