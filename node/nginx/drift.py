"""Drift: the applied tree on disk compared with the hashes recorded when it was applied."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from node.nginx.stage import TreeStore, hash_tree
from node.nginx.status import DriftReport

__all__ = ["compare", "scan"]


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> DriftReport:
    """Which files differ between two path -> hash maps."""
    return DriftReport(
        changed=tuple(
            sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p])
        ),
        missing=tuple(sorted(expected.keys() - actual.keys())),
        added=tuple(sorted(actual.keys() - expected.keys())),
    )


def scan(store: TreeStore, tree: Path, expected: Mapping[str, str]) -> DriftReport:
    """Hash ``tree`` and check that ``prefix/conf`` still points at it (blocking)."""
    report = compare(expected, hash_tree(tree) if tree.is_dir() else {})
    target = store.link_target()
    if target != tree.name:
        return DriftReport(
            report.changed,
            report.missing,
            report.added,
            link=f"conf points at {target or 'nothing'}, not {tree.name}",
        )
    return report
