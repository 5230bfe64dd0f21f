"""Bounded waits and screen reading for Pilot tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

__all__ = ["cell_text", "table_rows", "wait_for"]


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, within: float = 10.0
) -> None:
    """Let the app run until ``condition()`` holds; fail saying ``what`` after ``within``
    seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await pilot.pause(0.05)


def cell_text(value: object) -> str:
    plain = getattr(value, "plain", None)
    return plain if isinstance(plain, str) else str(value)


def table_rows(table: DataTable[object]) -> list[list[str]]:
    """Every row of ``table`` as the text of its cells, in display order."""
    return [[cell_text(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
