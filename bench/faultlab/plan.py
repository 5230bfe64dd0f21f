"""The seeded fault plan: episodes of one or more simultaneous faults, each followed by a
heal. The same seed and node count give the same plan.

Coverage first: every kind of fault appears within the first episodes (packed several to
an episode when the run is short), then episodes of one or two random faults follow.
Constraints keep each episode meaningful: at most one partition-like fault (partition,
one-way partition, isolation of a node to revoke), at most one process fault per node,
at most two daemons down at once, the full disk only on the node whose state directory
is a small tmpfs, the revoked node never that one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["KINDS", "Episode", "Fault", "Plan", "make_plan"]

KINDS = (
    "partition",
    "one_way",
    "loss",
    "kill9",
    "kill_nginx",
    "pause",
    "disk_full",
    "revoke",
)
_WEIGHTS = {
    "partition": 3.0,
    "one_way": 2.0,
    "loss": 2.0,
    "kill9": 2.0,
    "kill_nginx": 1.0,
    "pause": 2.0,
    "disk_full": 1.0,
    "revoke": 0.4,
}
_NETWORK = frozenset({"partition", "one_way", "revoke"})
_DOWN = frozenset({"kill9", "pause"})


@dataclass(frozen=True)
class Fault:
    """One fault on node slots (namespace indexes; a slot keeps its namespace when its
    node is replaced after a revocation).

    - ``partition``: ``slots`` | ``others``, nothing passes either way;
    - ``one_way``: nothing passes from ``slots`` to ``others`` (the reverse does);
    - ``loss``: each packet in or out of each of ``slots`` dropped with ``probability``;
    - ``kill9``: ``kill -9`` of the daemon, restarted at the heal;
    - ``pause``: SIGSTOP of the daemon, SIGCONT at the heal;
    - ``kill_nginx``: SIGKILL of the node's nginx master at ``offset`` (the daemon must
      restart it);
    - ``disk_full``: the node's state disk filled up, freed at the heal;
    - ``revoke``: ``slots[0]`` isolated, then revoked through ``others[0]``'s API at
      ``offset``; at the heal it is stopped and a new node joins in its namespace.
    """

    kind: str
    slots: tuple[int, ...]
    others: tuple[int, ...] = ()
    probability: float = 0.0
    offset: float = 0.0


@dataclass(frozen=True)
class Episode:
    index: int
    duration: float
    """Seconds the faults last while the workload runs; then everything heals."""
    faults: tuple[Fault, ...]


@dataclass(frozen=True)
class Plan:
    seed: int
    nodes: int
    disk_slot: int
    """The node whose state directory is a small tmpfs (the full-disk fault's target)."""
    episodes: tuple[Episode, ...]


class _Builder:
    def __init__(self, rng: random.Random, nodes: int, disk_slot: int, max_revokes: int) -> None:
        self.rng = rng
        self.nodes = nodes
        self.disk_slot = disk_slot
        self.revokes_left = max_revokes

    def place(self, kind: str, busy: set[int], taken: set[str], duration: float) -> Fault | None:
        """A fault of ``kind`` compatible with the episode so far, or None."""
        rng, n = self.rng, self.nodes
        free = [s for s in range(n) if s not in busy]
        if kind in _NETWORK and taken & _NETWORK:
            return None
        if kind == "partition":
            size = rng.randint(1, n // 2)
            side = tuple(sorted(rng.sample(range(n), size)))
            return Fault(kind, side, tuple(s for s in range(n) if s not in side))
        if kind == "one_way":
            senders = tuple(sorted(rng.sample(range(n), rng.randint(1, 2))))
            rest = [s for s in range(n) if s not in senders]
            return Fault(kind, senders, tuple(sorted(rng.sample(rest, rng.randint(1, 2)))))
        if kind == "loss":
            slots = tuple(sorted(rng.sample(range(n), rng.randint(1, 2))))
            return Fault(kind, slots, probability=round(rng.uniform(0.05, 0.30), 3))
        if kind in _DOWN:
            down = sum(1 for k in taken if k in _DOWN)
            if down >= min(2, n - 3) or not free:
                return None
            return Fault(kind, (rng.choice(free),))
        if kind == "kill_nginx":
            return Fault(kind, (rng.choice(free),), offset=round(rng.uniform(0, duration / 2), 2))
        if kind == "disk_full":
            if self.disk_slot not in free:
                return None
            return Fault(kind, (self.disk_slot,))
        if kind == "revoke":
            candidates = [s for s in free if s != self.disk_slot]
            if self.revokes_left <= 0 or len(candidates) < 2:
                return None
            target = rng.choice(candidates)
            issuer = rng.choice([s for s in candidates if s != target])
            self.revokes_left -= 1
            return Fault(kind, (target,), (issuer,), offset=1.5)
        raise ValueError(f"unknown fault kind {kind!r}")


def _busy_slots(fault: Fault) -> set[int]:
    if fault.kind in ("kill9", "pause", "disk_full"):
        return set(fault.slots)
    if fault.kind == "revoke":
        return set(fault.slots) | set(fault.others)
    return set()


def make_plan(seed: int, nodes: int, minutes: float, *, max_revokes: int | None = None) -> Plan:
    """Enough episodes for ``minutes`` of faults (and more, should episodes run short)."""
    if not 4 <= nodes <= 16:
        raise ValueError("the plan needs 4 to 16 nodes")
    rng = random.Random(seed)
    short = minutes < 4
    expected = max(3, math.floor(minutes * 60 / 30))
    revokes = max_revokes if max_revokes is not None else (1 if short else 2)
    builder = _Builder(rng, nodes, rng.randrange(nodes), revokes)
    pending = [k for k in KINDS if k != "revoke" or revokes > 0]
    rng.shuffle(pending)
    covering = min(expected, len(KINDS))
    per_episode = math.ceil(len(KINDS) / covering)
    episodes: list[Episode] = []
    for index in range(max(expected * 3, 12)):
        duration = round(rng.uniform(6, 9) if short else rng.uniform(8, 20), 1)
        busy: set[int] = set()
        taken: set[str] = set()
        faults: list[Fault] = []
        if pending:  # coverage: place up to per_episode of the kinds still to run,
            # the scarcest first (one partition-like fault per episode, one disk node)
            wanted = sorted(pending, key=lambda k: (k not in _NETWORK, k != "disk_full"))
            limit = per_episode
        else:
            kinds, weights = zip(*_WEIGHTS.items(), strict=True)
            limit = 1 if rng.random() < 0.6 else 2
            wanted = rng.choices(kinds, weights=weights, k=limit)
        for kind in wanted:
            if len(faults) >= limit:
                break
            fault = builder.place(kind, busy, taken, duration)
            if fault is None:
                continue
            faults.append(fault)
            taken.add(kind)
            busy |= _busy_slots(fault)
            if kind in pending:
                pending.remove(kind)
        if not faults:  # nothing fitted: a plain partition always does
            faults.append(
                builder.place("partition", set(), set(), duration) or Fault("loss", (0,), (), 0.1)
            )
        episodes.append(Episode(index, duration, tuple(faults)))
    return Plan(seed, nodes, builder.disk_slot, tuple(episodes))
