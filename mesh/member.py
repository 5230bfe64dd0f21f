"""Members as this node sees them: immutable records, replaced on every change.

Records are immutable so that a simulation of thousands of nodes can share them between
nodes until one changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

Address = tuple[str, int]
"""(host, port): a node's UDP and TCP address (the same port for both)."""


class MemberState(IntEnum):
    """Where a member stands. The wire carries these numbers: do not renumber."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def label(self) -> str:
        """Lower-case name, for logs, metrics and the API."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Member:
    """One member: identity, address, incarnation, state and metadata."""

    key: bytes
    """Ed25519 public key: the member's identity."""
    addr: Address
    incarnation: int
    state: MemberState
    meta: bytes
    since: float
    """Local time of the last state change."""

    @property
    def name(self) -> str:
        """Short printable id (first 12 hex digits of the key)."""
        return self.key.hex()[:12]

    @property
    def reachable(self) -> bool:
        """Alive or suspect: still probed and gossiped to."""
        return self.state <= MemberState.SUSPECT

    def evolve(self, **changes: object) -> Member:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]
