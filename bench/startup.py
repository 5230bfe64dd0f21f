"""CLI start-up time: ``uv run python -m bench.startup [--runs N]``.

Runs the installed ``nxmesh`` console script repeatedly and measures wall time, and reads
``python -X importtime`` for the CLI's module tree.

JSON keys (last line): ``runs, python_bare_ms, help_median_ms, help_p90_ms,
version_median_ms, import_cli_ms, heaviest_import``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.report import emit, percentile, progress

BIN = Path(sys.executable).parent


def wall_ms(argv: list[str], runs: int) -> list[float]:
    """Wall time in ms of each of ``runs`` runs of ``argv`` (after one warm-up run)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(argv, capture_output=True, check=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return times


def import_profile() -> tuple[float, str]:
    """(cumulative ms to import node.cli.main, the heaviest top-level import in it)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import node.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[2]), len(m[3]), m[4]))
    # Children are printed before their parent: node.cli.main's tree is the run of deeper
    # rows just above it.
    end = next(i for i, row in enumerate(rows) if row[2] == "node.cli.main")
    start = end
    while start > 0 and rows[start - 1][1] > 1:
        start -= 1
    outside = [r for r in rows[start:end] if not r[2].startswith("node")]
    top = max(outside, default=(0, 0, "-"))
    return rows[end][0] / 1000, f"{top[2]} ({top[0] / 1000:.1f} ms)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    nxmesh = str(BIN / "nxmesh")
    progress(f"timing {args.runs} runs each of python -c pass, nxmesh --help, nxmesh --version")
    bare = wall_ms([sys.executable, "-c", "pass"], args.runs)
    helps = wall_ms([nxmesh, "--help"], args.runs)
    versions = wall_ms([nxmesh, "--version"], args.runs)
    import_ms, heaviest = import_profile()
    emit(
        {
            "runs": args.runs,
            "python_bare_ms": round(statistics.median(bare), 1),
            "help_median_ms": round(statistics.median(helps), 1),
            "help_p90_ms": round(percentile(helps, 90), 1),
            "version_median_ms": round(statistics.median(versions), 1),
            "import_cli_ms": round(import_ms, 1),
            "heaviest_import": heaviest,
        }
    )


if __name__ == "__main__":
    main()
