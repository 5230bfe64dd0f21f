"""This node's member table: records by key, counts by state, probe order and sampling.

Kept lean on purpose (one dict and one list per node) so that simulations of 10,000
nodes, each holding the full table, fit in memory.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from mesh.member import Member, MemberState


class MemberTable:
    """Members by key (including this node), plus a shuffled ring of the others."""

    def __init__(self, local: Member, rng: random.Random) -> None:
        self.local_key = local.key
        self._rng = rng
        self._members: dict[bytes, Member] = {local.key: local}
        self._counts = dict.fromkeys(MemberState, 0)
        self._counts[local.state] += 1
        # Other members in probe order; also sampled at random for gossip targets.
        self._ring: list[bytes] = []
        self._next = 0

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def __contains__(self, key: bytes) -> bool:
        return key in self._members

    def get(self, key: bytes) -> Member | None:
        """The record of ``key``, if known."""
        return self._members.get(key)

    @property
    def local(self) -> Member:
        """This node's own record."""
        return self._members[self.local_key]

    def count(self, state: MemberState) -> int:
        """How many members are in ``state`` (this node included)."""
        return self._counts[state]

    @property
    def reachable(self) -> int:
        """Alive and suspect members, this node included: the N of the formulas."""
        return self._counts[MemberState.ALIVE] + self._counts[MemberState.SUSPECT]

    def put(self, member: Member) -> Member | None:
        """Insert or replace a record; returns the previous one."""
        old = self._members.get(member.key)
        self._members[member.key] = member
        if old is not None:
            self._counts[old.state] -= 1
        elif member.key != self.local_key:
            # A new member goes to a random place in the probe ring (as memberlist).
            self._ring.insert(self._rng.randint(0, len(self._ring)), member.key)
        self._counts[member.state] += 1
        return old

    def put_many(self, members: list[Member]) -> None:
        """Insert many new records at once (one shuffle instead of one insert each)."""
        fresh = [m for m in members if m.key not in self._members]
        for member in fresh:
            self._members[member.key] = member
            self._counts[member.state] += 1
        self._ring.extend(m.key for m in fresh if m.key != self.local_key)
        self._rng.shuffle(self._ring)
        self._next = 0

    def remove(self, key: bytes) -> None:
        """Forget a member entirely."""
        old = self._members.pop(key, None)
        if old is None or key == self.local_key:
            return
        self._counts[old.state] -= 1
        i = self._ring.index(key)
        del self._ring[i]
        if i < self._next:
            self._next -= 1

    def next_probe(self) -> Member | None:
        """The next reachable member in round-robin order, reshuffling at each wrap."""
        for _ in range(len(self._ring) + 1):
            if self._next >= len(self._ring):
                if not self._ring:
                    return None
                self._rng.shuffle(self._ring)
                self._next = 0
            member = self._members[self._ring[self._next]]
            self._next += 1
            if member.reachable:
                return member
        return None

    def sample(
        self, k: int, accept: Callable[[Member], bool], exclude: tuple[bytes, ...] = ()
    ) -> list[Member]:
        """Up to ``k`` distinct random members for which ``accept`` holds."""
        ring = self._ring
        n = len(ring)
        if k <= 0 or n == 0:
            return []
        chosen: dict[bytes, Member] = {}
        # Rejection sampling is cheap when most members qualify; fall back to a scan.
        for _ in range(3 * k + 8):
            key = ring[self._rng.randrange(n)]
            if key in chosen or key in exclude:
                continue
            member = self._members[key]
            if accept(member):
                chosen[key] = member
                if len(chosen) == k:
                    return list(chosen.values())
        pool = [
            m
            for key in ring
            if key not in chosen and key not in exclude and accept(m := self._members[key])
        ]
        extra = self._rng.sample(pool, min(k - len(chosen), len(pool)))
        return [*chosen.values(), *extra]
