"""Lifeguard's local health multiplier.

A node that misses probes or nacks is probably the slow one: it scales its own probe
interval and timeout by (score + 1) rather than accusing healthy peers.
"""

from __future__ import annotations


class Awareness:
    """A score in 0..max_multiplier-1; higher means this node is less healthy."""

    def __init__(self, max_multiplier: int) -> None:
        self.max = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> None:
        """Move the score by ``delta``, within bounds."""
        self.score = min(self.max - 1, max(0, self.score + delta))

    def scale(self, timeout: float) -> float:
        """``timeout`` stretched by the current health."""
        return timeout * (self.score + 1)
