"""From an edit to every nginx serving it: ``uv run python -m bench.edit_to_served --nodes 5``.

``--nodes`` real nodes (``nxmesh init`` / ``join`` / ``run`` as child processes, through
:mod:`node.localmesh`), each with its own managed nginx (``/usr/sbin/nginx``) on its own
loopback port, ``--preset`` lan by default; one loopback HTTP backend and one upstream
``app`` pointing at it. Then ``--rounds`` rounds of each of three paths, one round at a
time, each round on a random node and with a vhost of its own:

- **cli** (the headline): ``t0`` just before starting ``nxmesh vhost create NAME
  --server-name HOST --upstream app --state-dir DIR`` (the installed console script, as an
  operator types it: interpreter start, imports, name look-ups and the POST included);
- **cached**: the same command with a bytecode cache (:func:`bench.api.cached_env`,
  filled beforehand): where ``PYTHONDONTWRITEBYTECODE`` is set and the packages carry no
  ``.pyc`` files (``uv sync`` installs none), each command compiles every module it
  imports - about 0.4 s here - which an installed package does not;
- **api**: ``t0`` just before ``POST /v1/workspaces/{ws}/vhosts`` on an already open
  connection to the node's Unix socket.

After ``t0`` every node's nginx is polled in turn (``GET /`` with ``Host: HOST`` on a
fresh loopback connection, then ``--poll`` seconds of sleep) until each answered 200 from
the backend (bounded by ``--timeout``). A node's time is when its first 200 *arrived*
(so it includes up to one polling cycle, a few ms); the round's time is the last node's.
Percentiles by nearest rank over the rounds. The next round starts ``--gap`` seconds
after the previous one ended (the old nginx workers finish meanwhile).

Profile (details): ``cli_*`` is the command's own wall time (it returns once the edit is
acknowledged: committed and fsynced on the node); ``post_p50_s`` the API path's POST; and,
from every node's metrics endpoint over the run, the mean duration of an applier pass
(render to verified reload), of ``nginx -t`` and of the reload (HUP to new workers).

JSON keys (last line): ``nodes, p50_s, p99_s`` (the cli path) then details (``rounds,
max_s, first_p50_s, cli_p50_s, cli_p99_s, cached_p50_s, cached_p99_s, cached_cli_p50_s,
api_p50_s, api_p99_s, api_max_s, api_first_p50_s, post_p50_s, missed,
apply_pass_mean_s, nginx_t_mean_s, reload_mean_s, reloads, preset, start_s, node_rss_mb,
nginx_pss_mb, machine_load, machine, code``).
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.api import (
    NGINX,
    NXMESH,
    UnixApi,
    cached_env,
    ensure_upstream,
    vhost_body,
    workspace_id,
)
from bench.procs import MachineLoad, bench_session, code_version, rss_bytes
from bench.report import emit, machine, percentile, progress
from node.localmesh import LocalNode, NodeProcessError, backends, start_mesh, stop_all

APPLIER_METRICS = (
    "nxmesh_nginx_apply_duration_seconds",
    "nxmesh_nginx_test_duration_seconds",
    "nxmesh_nginx_reload_duration_seconds",
)


def serves(addr: str, host: str, timeout: float = 1.0) -> bool:
    """Whether nginx at ``addr`` answers ``GET /`` for ``host`` with 200 from the backend
    (a fresh connection: no keep-alive to an old worker)."""
    hostname, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        return response.status == 200 and body.startswith(b"backend ")
    except OSError:
        return False
    finally:
        conn.close()


def wait_served(
    nodes: list[LocalNode], host: str, t0: float, timeout: float, poll: float
) -> dict[int, float]:
    """node index -> seconds from ``t0`` (perf_counter) to its first 200 for ``host``."""
    done: dict[int, float] = {}
    deadline = t0 + timeout
    while len(done) < len(nodes) and time.perf_counter() < deadline:
        for i, node in enumerate(nodes):
            if i not in done and serves(node.http, host):
                done[i] = time.perf_counter() - t0
        time.sleep(poll)
    return done


def histogram_totals(node: LocalNode, names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """name -> (sum, count) of each histogram on the node's metrics endpoint."""
    status = node.api("GET", "/v1/status")
    text = httpx.get(f"http://{status['metrics']}/metrics", timeout=5).text
    out = {name: (0.0, 0.0) for name in names}
    for line in text.splitlines():
        for name in names:
            for suffix, slot in (("_sum", 0), ("_count", 1)):
                if line.startswith(name + suffix + " ") or line.startswith(name + suffix + "{"):
                    value = float(line.rsplit(" ", 1)[1])
                    pair = list(out[name])
                    pair[slot] += value
                    out[name] = (pair[0], pair[1])
    return out


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` (MB); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def nginx_pids(node: LocalNode) -> list[int]:
    """The node's nginx master and its workers."""
    try:
        master = int((node.state / "nginx" / "logs" / "nginx.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        children = []
    return pids + [int(c) for c in children]


@dataclass
class Series:
    """One path's rounds."""

    last: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)
    """The command's (cli) or the POST's (api) own time."""
    missed: int = 0


def run_rounds(
    nodes: list[LocalNode],
    path: str,
    rounds: int,
    create: Callable[[LocalNode, str, str], None],
    args: argparse.Namespace,
    rng: random.Random,
    token: str,
    prepare: Callable[[LocalNode], None] | None = None,
) -> Series:
    series = Series()
    for r in range(rounds):
        for node in nodes:
            if node.process is None or node.process.poll() is not None:
                raise RuntimeError(f"{node.name} is no longer running:\n{node.tail()}")
        origin = rng.randrange(len(nodes))
        name = f"{path}{r}-{token}"
        host = f"{name}.served.bench.test"
        if prepare is not None:
            prepare(nodes[origin])
        t0 = time.perf_counter()
        create(nodes[origin], name, host)
        series.own.append(time.perf_counter() - t0)
        done = wait_served(nodes, host, t0, args.timeout, args.poll)
        if len(done) < len(nodes):
            series.missed += len(nodes) - len(done)
            progress(f"{path} round {r}: only {len(done)}/{len(nodes)} served in {args.timeout} s")
        else:
            series.last.append(max(done.values()))
            series.first.append(min(done.values()))
            progress(
                f"{path} round {r} on {nodes[origin].name}: command {series.own[-1]:.3f} s, "
                f"first node {series.first[-1]:.3f} s, last {series.last[-1]:.3f} s"
            )
        time.sleep(args.gap)
    return series


def _r(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 4) if values else None


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    if not Path(NGINX).exists():
        raise RuntimeError(f"nginx is not installed at {NGINX} (apt-get install nginx)")
    rng = random.Random(args.seed)
    token = f"{rng.randrange(1 << 32):08x}"
    extra = ("--preset", args.preset, "--nginx", "managed", "--nginx-binary", NGINX)
    nodes: list[LocalNode] = []
    apis: dict[str, UnixApi] = {}
    try:
        with backends(1) as ports:
            t_start = time.monotonic()
            nodes = start_mesh(root, args.nodes, extra=extra, prefix="n")
            start_s = time.monotonic() - t_start
            progress(f"{args.nodes} nodes with managed nginx up and converged in {start_s:.1f} s")
            apis = {n.name: UnixApi(n.state / "api.sock") for n in nodes}
            first = apis[nodes[0].name]
            ws = workspace_id(first)
            upstream = ensure_upstream(first, ws, ports[0])
            base = f"/v1/workspaces/{ws}/vhosts"
            # A warm-up vhost served everywhere: every nginx has applied the upstream.
            first.call("POST", base, vhost_body("warmup", "warmup.served.bench.test", upstream))
            warm = wait_served(nodes, "warmup.served.bench.test", time.perf_counter(), 60, 0.05)
            if len(warm) < len(nodes):
                raise RuntimeError("the warm-up vhost was not served by every node in 60 s")
            time.sleep(args.gap)
            before = {n.name: histogram_totals(n, APPLIER_METRICS) for n in nodes}
            load = MachineLoad().start()

            cached = cached_env(root / "pycache")
            # Fill the bytecode cache with what `vhost create` imports (not measured).
            subprocess.run(
                [NXMESH, "vhost", "list", "--state-dir", str(nodes[0].state)],
                capture_output=True,
                env=cached,
                timeout=60,
                check=True,
            )

            def cli(env: dict[str, str] | None) -> Callable[[LocalNode, str, str], None]:
                def create(node: LocalNode, name: str, host: str) -> None:
                    argv = [NXMESH, "vhost", "create", name, "--server-name", host]
                    argv += ["--upstream", "app", "--state-dir", str(node.state)]
                    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
                    if done.returncode != 0:
                        raise RuntimeError(f"nxmesh vhost create failed: {done.stderr.strip()}")

                return create

            def by_api(node: LocalNode, name: str, host: str) -> None:
                apis[node.name].call("POST", base, vhost_body(name, host, upstream))

            def connect(node: LocalNode) -> None:
                # An idle keep-alive connection may have been closed by the server:
                # (re)connect before the clock starts.
                apis[node.name].call("GET", "/v1/status")

            plain = run_rounds(nodes, "cli", args.rounds, cli(None), args, rng, token)
            with_cache = run_rounds(nodes, "cached", args.rounds, cli(cached), args, rng, token)
            api = run_rounds(nodes, "api", args.rounds, by_api, args, rng, token, connect)
            load.stop()
            after = {n.name: histogram_totals(n, APPLIER_METRICS) for n in nodes}
            node_rss = [rss_bytes(n.process.pid) for n in nodes if n.process is not None]
            pss = [sum(pss_mb(p) for p in nginx_pids(n)) for n in nodes]
    finally:
        for client in apis.values():
            client.close()
        stop_all(nodes)

    def mean_of(metric: str) -> tuple[float | None, int]:
        total = sum(after[n][metric][0] - before[n][metric][0] for n in after)
        count = sum(after[n][metric][1] - before[n][metric][1] for n in after)
        return (round(total / count, 4) if count else None), int(count)

    apply_mean, _ = mean_of("nxmesh_nginx_apply_duration_seconds")
    test_mean, _ = mean_of("nxmesh_nginx_test_duration_seconds")
    reload_mean, reloads = mean_of("nxmesh_nginx_reload_duration_seconds")
    return {
        "nodes": args.nodes,
        "p50_s": _r(plain.last, 50),
        "p99_s": _r(plain.last, 99),
        "rounds": args.rounds,
        "max_s": round(max(plain.last), 4) if plain.last else None,
        "first_p50_s": _r(plain.first, 50),
        "cli_p50_s": _r(plain.own, 50),
        "cli_p99_s": _r(plain.own, 99),
        "cached_p50_s": _r(with_cache.last, 50),
        "cached_p99_s": _r(with_cache.last, 99),
        "cached_cli_p50_s": _r(with_cache.own, 50),
        "api_p50_s": _r(api.last, 50),
        "api_p99_s": _r(api.last, 99),
        "api_max_s": round(max(api.last), 4) if api.last else None,
        "api_first_p50_s": _r(api.first, 50),
        "post_p50_s": _r(api.own, 50),
        "missed": plain.missed + with_cache.missed + api.missed,
        "apply_pass_mean_s": apply_mean,
        "nginx_t_mean_s": test_mean,
        "reload_mean_s": reload_mean,
        "reloads": reloads,
        "preset": args.preset,
        "start_s": round(start_s, 1),
        "node_rss_mb": round(statistics.fmean(node_rss) / 2**20, 1) if node_rss else None,
        "nginx_pss_mb": round(statistics.fmean(pss), 1) if pss else None,
        "machine_load": load.summary(),
        "machine": machine(),
        "code": code_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20, help="per path (cli, cached, api)")
    parser.add_argument("--preset", choices=("lan", "wan", "local"), default="lan")
    parser.add_argument("--timeout", type=float, default=30.0, help="per round, s")
    parser.add_argument("--gap", type=float, default=1.5, help="between rounds, s")
    parser.add_argument("--poll", type=float, default=0.002, help="sleep between polls, s")
    parser.add_argument("--seed", type=int, default=None, help="for the choice of origins")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' directory")
    args = parser.parse_args()
    if args.nodes < 1 or not 1 <= args.rounds <= 1000:
        parser.error("need --nodes >= 1 and 1 <= --rounds <= 1000")
    root = Path(tempfile.mkdtemp(prefix="bench-served-"))
    progress(f"{machine()}; {args.nodes} nodes, {args.rounds} rounds per path; work dir {root}")
    errors = (RuntimeError, NodeProcessError, OSError, subprocess.TimeoutExpired)
    with bench_session(root, keep=args.keep, errors=errors):
        result = run(args, root)
    emit(result)


if __name__ == "__main__":
    main()
