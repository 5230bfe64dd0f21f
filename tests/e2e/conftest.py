"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.localmesh import LocalNode, start_mesh, stop_all

RENDER_ONLY = ("--preset", "local", "--nginx", "render-only")
"""Daemons without nginx: the fastest real nodes."""


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[LocalNode, LocalNode]]:
    """Two real render-only daemons joined by a token."""
    nodes = start_mesh(tmp_path, 2, extra=RENDER_ONLY)
    try:
        yield nodes[0], nodes[1]
    finally:
        stop_all(nodes)
