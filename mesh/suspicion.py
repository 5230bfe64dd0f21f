"""Lifeguard's dynamic suspicion timeout: a pure function, and a small tracker.

A fresh suspicion waits ``max_timeout``; each independent confirmation (another member
suspecting the same node) shrinks the wait logarithmically towards ``min_timeout``, which
is reached after ``expected`` confirmations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def suspicion_timeout(
    confirmations: int, expected: int, min_timeout: float, max_timeout: float
) -> float:
    """Seconds a suspicion lasts, measured from its start, after ``confirmations``."""
    if expected <= 0 or max_timeout <= min_timeout:
        return min_timeout
    frac = math.log(confirmations + 1) / math.log(expected + 1)
    timeout = max_timeout - frac * (max_timeout - min_timeout)
    return max(min_timeout, timeout)


def suspicion_bounds(
    members: int, probe_interval: float, suspicion_mult: float, max_timeout_mult: float
) -> tuple[float, float]:
    """(min, max) suspicion timeout in a mesh of ``members`` nodes (memberlist's formula)."""
    node_scale = max(1.0, math.log10(max(1, members)))
    min_timeout = suspicion_mult * node_scale * probe_interval
    return min_timeout, min_timeout * max_timeout_mult


@dataclass(slots=True)
class Suspicion:
    """One running suspicion: when it started and who has confirmed it.

    ``confirmers`` starts with whoever raised the suspicion; that first accuser is not a
    confirmation - only others who suspect the same node independently are."""

    start: float
    expected: int
    min_timeout: float
    max_timeout: float
    confirmers: set[bytes] = field(default_factory=set)
    confirmations: int = 0

    def confirm(self, sender: bytes) -> bool:
        """Count ``sender``'s confirmation; False if it was already counted (or enough were)."""
        if self.confirmations >= self.expected or sender in self.confirmers:
            return False
        self.confirmers.add(sender)
        self.confirmations += 1
        return True

    @property
    def deadline(self) -> float:
        """When the suspect is declared dead, given the confirmations so far."""
        return self.start + suspicion_timeout(
            self.confirmations, self.expected, self.min_timeout, self.max_timeout
        )
