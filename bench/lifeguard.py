"""Lifeguard on vs off with one slow member: ``uv run python -m bench.lifeguard``.

One member's receive path stalls for 2 s at random moments (its input waits unread
while its timers run - a CPU-starved process, the Lifeguard paper's slow member). Every
node is alive throughout, so every "dead" declaration is a false positive. Counted per
declaring node, split into declarations about *healthy* members (what Lifeguard targets:
a slow member must not get healthy ones killed) and about the slow member itself
(it really does not answer for 2 s at a time).

JSON keys (last line): ``nodes, seconds, stall_s, seeds, classic_false_dead_healthy,
lifeguard_false_dead_healthy, classic_false_dead_slow, lifeguard_false_dead_slow,
healthy_cut`` (classic / max(1, lifeguard)).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from bench.report import emit, progress
from mesh.config import MeshConfig
from mesh.events import Event, MemberDead
from mesh.sim import Simulation

SLOW = 0


@dataclass(frozen=True)
class Outcome:
    """False dead declarations in one run."""

    healthy: int
    slow: int


def run(*, lifeguard: bool, nodes: int, seconds: float, seed: int, stall: float = 2.0) -> Outcome:
    """One seeded run with the ``local`` preset (fast detection, where this matters)."""
    sim = Simulation(nodes, seed=seed, config=MeshConfig.local(lifeguard=lifeguard))
    slow_key = sim.nodes[SLOW].key
    declared: list[bytes] = []

    def hook(_: int, e: Event, __: float) -> None:
        if isinstance(e, MemberDead):
            declared.append(e.member.key)

    sim.hooks.append(hook)
    rng = random.Random(seed)
    t = 1.0
    while t < seconds:
        sim.run_until(t)
        sim.slow(SLOW, stall)
        t += stall + rng.uniform(1.0, 5.0)
    sim.run_until(seconds + 30)
    on_slow = sum(1 for k in declared if k == slow_key)
    return Outcome(healthy=len(declared) - on_slow, slow=on_slow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    totals = {True: Outcome(0, 0), False: Outcome(0, 0)}
    for seed in range(1, args.seeds + 1):
        for lifeguard in (False, True):
            out = run(lifeguard=lifeguard, nodes=args.nodes, seconds=args.seconds, seed=seed)
            progress(f"seed {seed} lifeguard={lifeguard}: healthy {out.healthy}, slow {out.slow}")
            prev = totals[lifeguard]
            totals[lifeguard] = Outcome(prev.healthy + out.healthy, prev.slow + out.slow)
    emit(
        {
            "nodes": args.nodes,
            "seconds": args.seconds,
            "stall_s": 2.0,
            "seeds": args.seeds,
            "classic_false_dead_healthy": totals[False].healthy,
            "lifeguard_false_dead_healthy": totals[True].healthy,
            "classic_false_dead_slow": totals[False].slow,
            "lifeguard_false_dead_slow": totals[True].slow,
            "healthy_cut": round(totals[False].healthy / max(1, totals[True].healthy), 1),
        }
    )


if __name__ == "__main__":
    main()
