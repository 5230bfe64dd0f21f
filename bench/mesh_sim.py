"""Broadcast spread in a simulated mesh: ``uv run python -m bench.mesh_sim --nodes N --loss P``.

Every node runs the real protocol core on the seeded fake network of mesh/sim.py, starting
from a converged membership (a running fleet); one broadcast from a random node is timed
in virtual seconds. The ``lan`` preset: gossip interval 200 ms, fan-out 3, eager push on.

JSON keys (last line): ``nodes, loss, t99_99_s, t100_s, bytes_per_node_s, wall_s`` and also
``broadcasts, t50_s, eager_push, latency_ms, seed, rss_mb``. Times are medians over
``--broadcasts`` broadcasts; ``bytes_per_node_s`` counts every datagram and TCP frame sent
during the measured windows (probes included), per node per virtual second.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import statistics
import time

from bench.report import emit, progress
from mesh.config import MeshConfig
from mesh.events import BroadcastDelivered, Event
from mesh.sim import NetworkModel, Simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--broadcasts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-eager-push", action="store_true", help="gossip rounds only")
    parser.add_argument("--latency-ms", type=float, nargs=2, default=(1.0, 5.0))
    parser.add_argument("--window", type=float, default=3.0, help="virtual seconds per broadcast")
    args = parser.parse_args()

    wall = time.perf_counter()
    config = MeshConfig.lan(eager_push=not args.no_eager_push)
    network = NetworkModel(
        latency=(args.latency_ms[0] / 1000, args.latency_ms[1] / 1000), loss=args.loss
    )
    progress(f"building {args.nodes} nodes")
    sim = Simulation(args.nodes, seed=args.seed, config=config, network=network)
    got: dict[int, float] = {}

    def hook(i: int, e: Event, t: float) -> None:
        if isinstance(e, BroadcastDelivered) and e.payload == current[0]:
            got.setdefault(i, t)

    current = [b""]
    sim.hooks.append(hook)
    sim.run_until(2.0)
    rng = random.Random(args.seed)
    need = math.ceil(0.9999 * (args.nodes - 1))
    t50s, t9999s, t100s = [], [], []
    bytes_before, measured = sim.bytes, 0.0
    for b in range(args.broadcasts):
        got.clear()
        origin = rng.randrange(args.nodes)
        current[0] = f"broadcast-{b}".encode()
        start = sim.now
        sim.nodes[origin].core.broadcast(start, current[0])
        sim.flush(origin)
        sim.run_until(start + args.window)
        measured += args.window
        times = sorted(t - start for t in got.values())
        progress(f"broadcast {b}: {len(times)}/{args.nodes - 1} nodes, last at {times[-1]:.3f} s")
        t50s.append(times[len(times) // 2])
        t9999s.append(times[need - 1] if len(times) >= need else math.inf)
        t100s.append(times[-1] if len(times) == args.nodes - 1 else math.inf)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit(
        {
            "nodes": args.nodes,
            "loss": args.loss,
            "t99_99_s": round(statistics.median(t9999s), 3),
            "t100_s": round(statistics.median(t100s), 3),
            "bytes_per_node_s": round((sim.bytes - bytes_before) / args.nodes / measured, 1),
            "wall_s": round(time.perf_counter() - wall, 1),
            "broadcasts": args.broadcasts,
            "t50_s": round(statistics.median(t50s), 3),
            "eager_push": not args.no_eager_push,
            "latency_ms": list(args.latency_ms),
            "seed": args.seed,
            "rss_mb": round(rss),
        }
    )


if __name__ == "__main__":
    main()
