"""Run asyncio code (Textual) from a suite whose default mode is trio."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_asyncio(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a fresh asyncio loop of its own; the trio test runner never sees it."""
    return asyncio.run(coro)
