"""End-to-end helpers over :mod:`node.localmesh` (real node processes, real nginx)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from node.localmesh import LocalNode, backends, nxmesh, start_mesh, stop_all, until

__all__ = ["LocalNode", "backends", "mesh", "metric", "nxmesh", "until"]


@contextmanager
def mesh(root: Path, count: int) -> Iterator[list[LocalNode]]:
    """``count`` running nodes joined by tokens; every one (and its nginx) stopped after."""
    nodes = start_mesh(root, count, extra=("--preset", "local"))
    try:
        yield nodes
    finally:
        stop_all(nodes)


def metric(node: LocalNode, name: str, labels: str = "") -> float:
    """The sum of a metric's samples (matching ``labels``) from the node's endpoint."""
    status = node.api("GET", "/v1/status")
    text = httpx.get(f"http://{status['metrics']}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            total += float(line.rsplit(" ", 1)[1])
    return total
