"""Console start-up: ``uv run python -m bench.tui_startup --vhosts 1000 [--runs 7]``.

Starts one real node (render-only) under a temporary directory, fills its workspace
with one upstream and ``--vhosts`` virtual hosts through the API, waits until the node
has applied them, then starts the console ``--runs`` times in a pseudo-terminal of 80x24
- as an operator does, ``nxmesh tui --state-dir DIR`` (the CLI replaces itself with
``python -m tui``) - and reads what it paints:

- ``first_frame_ms``: until the footer is on the terminal (Textual painted a frame);
- ``overview_ms``: until the overview shows the members and the convergence line
  (``1/1 nodes on state ...``), which needs ``/v1/status`` and ``/v1/nodes`` answered.

Each run quits with ``q``. Also measured: ``python -m tui`` directly (without the CLI
in front), and *cold* starts with no byte-code cache at all (``PYTHONDONTWRITEBYTECODE``
and no ``__pycache__``, as in this repository's development environment: every module is
compiled from source on each start). The normal case - an installed package whose
byte code is cached after its first start - keeps its cache in a private
``PYTHONPYCACHEPREFIX`` here, so the checkout is not written to.

JSON keys (last line): ``vhosts, runs, overview_median_ms, overview_p90_ms,
first_frame_median_ms, direct_overview_median_ms, cold_overview_median_ms,
python_bare_ms, load_avg, goal_ms, machine``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.report import emit, machine, percentile, progress
from node.localmesh import LocalNode, start_mesh, stop_all, until

GOAL_MS = 1000.0
_ANSI = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI: colours, cursor moves, modes
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: title, clipboard
    rb"|\x1b[()][0-9A-Za-z]|\x1b[=>78]"  # charsets, keypad, save/restore
)
FIRST_FRAME = b"palette"
"""In the footer: Textual has painted the screen."""
OVERVIEW = b"nodes on state"
WAIT = 30.0


def fill(node: LocalNode, vhosts: int) -> None:
    """One upstream and ``vhosts`` virtual hosts in the default workspace."""
    node.api(
        "PUT",
        "/v1/workspaces/default/upstreams/app",
        {"name": "app", "servers": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002"}]},
    )
    for i in range(vhosts):
        node.api(
            "POST",
            "/v1/workspaces/default/vhosts",
            {
                "name": f"site{i:05d}",
                "server_names": [f"site{i:05d}.example.test"],
                "locations": [{"path": "/", "upstream": "app"}],
            },
        )
        if i and i % 250 == 0:
            progress(f"  {i} virtual hosts")


def applied(node: LocalNode, vhosts: int) -> bool:
    conf = node.state / "nginx" / "conf" / "http.d" / "default" / "vhosts"
    try:
        return sum(1 for _ in conf.iterdir()) >= vhosts
    except OSError:
        return False


def environment(pycache: Path | None) -> dict[str, str]:
    """The console's environment: byte code cached under ``pycache``, or never (None)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHONDONTWRITE", "PYTHONPYCACHE"))
    }
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return {**env, "TERM": "xterm-256color"}


def time_console(
    argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24
) -> tuple[float, float]:
    """(ms to the first frame, ms to the overview with members) of one console start."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**env, "COLUMNS": str(cols), "LINES": str(rows)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    seen = b""
    first = overview = 0.0
    try:
        deadline = start + WAIT
        while not overview:
            if time.perf_counter() > deadline or proc.poll() is not None:
                text = _ANSI.sub(b"", seen)[-600:].decode(errors="replace")
                raise RuntimeError(f"the console showed no overview in {WAIT:g} s:\n{text}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                seen += os.read(master, 65536)
            except OSError:
                continue
            plain = _ANSI.sub(b"", seen)
            now = (time.perf_counter() - start) * 1000
            if not first and FIRST_FRAME in plain:
                first = now
            if OVERVIEW in plain:
                overview = now
    finally:
        _quit(proc, master)
    return first, overview


def _quit(proc: subprocess.Popen[bytes], master: int) -> None:
    try:
        os.write(master, b"q")
        end = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 65536)  # keep the pty drained while it exits
                except OSError:
                    break
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        os.close(master)


def bare_python_ms(runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vhosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nxmesh-tui-bench-") as tmp:
        progress("starting one node (render-only)")
        nodes = start_mesh(Path(tmp), 1, extra=("--preset", "local", "--nginx", "render-only"))
        try:
            node = nodes[0]
            progress(f"creating {args.vhosts} virtual hosts through the API")
            fill(node, args.vhosts)
            until(lambda: applied(node, args.vhosts), "the node to render every vhost", 120)
            state = str(node.state)
            cli = [sys.executable, "-m", "node.cli", "tui", "--state-dir", state]
            direct = [sys.executable, "-m", "tui", "--state-dir", state]
            warm, cold = environment(Path(tmp) / "pycache"), environment(None)
            time_console(cli, warm)  # warm-up: fills the byte-code cache and the page cache
            firsts, overviews, directs, colds = [], [], [], []
            loads = [os.getloadavg()[0]]
            for run in range(args.runs):
                first, overview = time_console(cli, warm)
                _, direct_ms = time_console(direct, warm)
                _, cold_ms = time_console(cli, cold)
                progress(
                    f"run {run + 1}: first frame {first:.0f} ms, overview {overview:.0f} ms "
                    f"(python -m tui: {direct_ms:.0f} ms; no byte-code cache: {cold_ms:.0f} ms)"
                )
                firsts.append(first)
                overviews.append(overview)
                directs.append(direct_ms)
                colds.append(cold_ms)
            loads.append(os.getloadavg()[0])
        finally:
            stop_all(nodes)
    emit(
        {
            "vhosts": args.vhosts,
            "runs": args.runs,
            "overview_median_ms": round(statistics.median(overviews), 1),
            "overview_p90_ms": round(percentile(overviews, 90), 1),
            "first_frame_median_ms": round(statistics.median(firsts), 1),
            "direct_overview_median_ms": round(statistics.median(directs), 1),
            "cold_overview_median_ms": round(statistics.median(colds), 1),
            "python_bare_ms": round(bare_python_ms(args.runs), 1),
            "load_avg": round(max(loads), 2),
            "goal_ms": GOAL_MS,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
