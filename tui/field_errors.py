"""Put the API's field errors next to the form fields they are about.

A form field names the API paths it edits (``locations[0].upstream``, ``servers``); an
error whose ``field`` is that path, or lies inside it (``servers[1].address``), belongs to
it. What matches no field is shown at the top of the form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from tui.client import FieldError

__all__ = ["assign_errors"]

_INDEX = re.compile(r"\[(\d+)\]")


def _inside(error_field: str, path: str) -> bool:
    return error_field == path or error_field.startswith((f"{path}[", f"{path}."))


def _where(rest: str) -> str:
    """``[1].address`` -> ``#2 address``: a path below the field, in words."""
    text = _INDEX.sub(lambda m: f" #{int(m[1]) + 1} ", rest).replace(".", " ")
    return " ".join(text.split())


def assign_errors(
    errors: Iterable[FieldError], fields: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """(messages per form field key, messages for no field). ``fields`` maps a form
    field's key to the API paths it edits; the longest matching path wins."""
    placed: dict[str, list[str]] = {}
    unplaced: list[str] = []
    for error in errors:
        best: tuple[int, str, str] | None = None
        for key, paths in fields.items():
            for path in paths:
                if _inside(error.field, path) and (best is None or len(path) > best[0]):
                    best = (len(path), key, path)
        if best is None:
            unplaced.append(f"{error.field}: {error.reason}" if error.field else error.reason)
            continue
        _, key, path = best
        where = _where(error.field[len(path) :])
        placed.setdefault(key, []).append(f"{where}: {error.reason}" if where else error.reason)
    return placed, unplaced
