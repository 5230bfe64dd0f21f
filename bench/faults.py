"""Fault injection on real processes: ``sudo uv run python -m bench.faults --minutes 10``.

Starts ``--nodes`` NxMesh daemons (each with its own managed nginx) in Linux network
namespaces on a bridge of their own, runs a seeded plan of faults - full and one-way
partitions, 5-30 % packet loss, kill -9 and restart, nginx killed, a daemon paused
(SIGSTOP/SIGCONT), a full disk, a node revoked while partitioned - under a client
workload of concurrent edits on every side, heals after each episode and checks: equal
documents and applied digests everywhere, no acknowledged edit lost, no reachable node
declared dead beyond the documented bound, every nginx serving the final state.
Everything the lab creates is removed at the end. Details: docs/faults.md.

JSON keys (last line): ``minutes, faults, edits_acked, edits_lost, heal_convergence_p50_s,
heal_convergence_p99_s, false_suspicions``, then ``passed`` and the detail (seed, fault
kinds, refused/unknown/superseded edits, bounds, member convergence, suspicions...).
Exit status 0 only when the run passed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.faultlab import LabConfig, run_lab
from bench.report import emit, progress


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=6, choices=range(5, 8), metavar="5..7")
    parser.add_argument("--preset", choices=("local", "lan"), default="local")
    parser.add_argument("--threads", type=int, default=3, help="workload client threads")
    parser.add_argument("--work-dir", type=Path, help="keep state, logs and report.json here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("network namespaces and iptables need root")
    signal.signal(signal.SIGTERM, _interrupted)
    config = LabConfig(
        seed=args.seed,
        nodes=args.nodes,
        minutes=args.minutes,
        preset=args.preset,
        root=args.work_dir,
        threads=args.threads,
    )
    report = run_lab(config)
    summary = report.summary()
    if report.work_dir:
        progress(f"work directory (logs, report.json): {report.work_dir}")
    emit(summary)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
