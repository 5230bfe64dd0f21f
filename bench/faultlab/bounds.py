"""The time bounds the checker holds the mesh to, derived from the preset's settings
(mesh/config.py, docs/mesh.md "Failure detection bound") - never tuned to results.

- :func:`suspicion_bound`: how long after a fault impairing a node stops a death
  declaration about it can still be its consequence. A suspicion raised while the node
  was unreachable is raised within one probe period stretched by the worst local health
  (``awareness_max_multiplier x probe_interval``); it lasts at most the Lifeguard maximum
  (``suspicion_max_timeout_mult x suspicion_mult x max(1, log10 N) x probe_interval``,
  when no refutation gets through); the declaration then spreads by gossip (ten gossip
  intervals allowed). ``local``, N <= 9: 8 + 18 + 1 = 27 s; ``lan``: 8 + 24 + 2 = 34 s.
- :func:`convergence_bound`: how long after a heal every live node must hold the same
  documents and serve them. After a partition the updates of the other side arrive only
  by anti-entropy: with dead members, a reconnect exchange every ``reconnect_interval``;
  otherwise the periodic push-pull with one random member every ``push_pull_interval``
  (scaled with N), so spreading to everyone takes a few periods. Allowed: a reconnect
  interval, four push-pull periods, the applier's longest quiet period and 5 s to stage,
  test and reload nginx. ``local``, N <= 32: 2 + 60 + 2 + 5 = 69 s; ``lan``: 137 s.
"""

from __future__ import annotations

from mesh import MeshConfig
from mesh.suspicion import suspicion_bounds

__all__ = ["convergence_bound", "suspicion_bound"]

APPLIER_MAX_QUIET = 2.0
"""node.nginx.NginxSettings.max_quiet (the applier's coalescing ceiling)."""
APPLY_SLACK = 5.0
GOSSIP_ROUNDS = 10
PUSH_PULL_PERIODS = 4


def suspicion_bound(preset: str, members: int) -> float:
    config = MeshConfig.preset(preset)
    _, longest = suspicion_bounds(
        members,
        config.probe_interval,
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
    )
    stretched_probe = config.awareness_max_multiplier * config.probe_interval
    return round(stretched_probe + longest + GOSSIP_ROUNDS * config.gossip_interval, 3)


def convergence_bound(preset: str, members: int) -> float:
    config = MeshConfig.preset(preset)
    return round(
        config.reconnect_interval
        + PUSH_PULL_PERIODS * config.push_pull_period(members)
        + APPLIER_MAX_QUIET
        + APPLY_SLACK,
        3,
    )
