"""The local API's throughput and the CLI's wall time: ``uv run python -m bench.api``.

One real node (``nxmesh init`` + ``nxmesh run`` as a child process, managed nginx unless
``--nginx render-only``; lan preset) with one upstream and ``--targets`` virtual hosts.
Then, on 127.0.0.1 / the node's Unix socket only:

- ``edits_per_s``: ``--edits`` sequential ``PATCH /v1/workspaces/{ws}/vhosts/{id}`` (a new
  ``description`` each time, round robin over the targets) from one keep-alive client;
  each answer arrives only once the edit is committed and fsynced (SQLite WAL,
  ``synchronous=FULL``) and handed to the mesh. Latency p50/p99 alongside.
- ``concurrent_edits_per_s``: the same number of edits from ``--clients`` threads, each
  with its own connection and its own targets, all started together.
- ``creates_per_s`` (detail): ``--creates`` sequential ``POST`` of new virtual hosts -
  each also checks that the name is free, so it reads every vhost of the workspace.
- ``help_s``, ``status_s``: wall time of the installed ``nxmesh`` console script for
  ``--help`` and for ``status --state-dir DIR`` against the running node (median of
  ``--runs`` after one warm-up; process start-up included: what an operator waits for),
  in this process's environment; ``help_cached_s``, ``status_cached_s`` the same with a
  bytecode cache (:func:`cached_env`): where ``PYTHONDONTWRITEBYTECODE`` is set and the
  packages were installed without ``.pyc`` files (``uv sync``'s default), every run
  compiles every module it imports, which an installed package (pip, Debian) does not.

The client is ``http.client`` over the Unix socket (a few tens of microseconds of client
CPU a request, far less than httpx), in this process: on a 2-core machine it still takes
CPU the node could use - the figures are a floor of what the node sustains. The node's
applier keeps running meanwhile (the edits change the rendered tree; it coalesces them
and applies at most every 2 s), as it would in production.

JSON keys (last line): ``edits_per_s, concurrent_edits_per_s, help_s, status_s`` then
details (``edits, clients, edit_p50_ms, edit_p99_ms, concurrent_p50_ms,
concurrent_p99_ms, creates, creates_per_s, create_p50_ms, runs, help_p90_s,
status_p90_s, help_cached_s, status_cached_s, bytecode_cache_in_env, nginx,
node_rss_mb, node_cpu_s, machine_load, machine, code``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.procs import MachineLoad, bench_session, code_version, cpu_seconds, rss_bytes
from bench.report import emit, machine, percentile, progress
from bench.startup import BIN
from node.localmesh import LocalNode, NodeProcessError, start_mesh, stop_all

NXMESH = str(BIN / "nxmesh")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix stream socket (the node's ``api.sock``)."""

    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        super().__init__("nxmesh", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiError(RuntimeError):
    """The API answered with an error status."""


class UnixApi:
    """A small keep-alive JSON client of one node's API (reconnects when the server
    closed the connection)."""

    def __init__(self, socket_path: Path | str, timeout: float = 30.0) -> None:
        self.conn = UnixHTTPConnection(socket_path, timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt:
                    raise
        return response.status, json.loads(raw) if raw else None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON; :class:`ApiError` on a status of 400 or more."""
        status, answer = self.request(method, path, body)
        if status >= 400:
            raise ApiError(f"{method} {path}: {status} {answer}")
        return answer

    def close(self) -> None:
        self.conn.close()


def workspace_id(api: UnixApi) -> str:
    """The node's only (default) workspace."""
    items = api.call("GET", "/v1/workspaces")["items"]
    if len(items) != 1:
        raise RuntimeError(f"expected one workspace, found {len(items)}")
    return str(items[0]["id"])


def ensure_upstream(api: UnixApi, ws: str, port: int = 9) -> str:
    """An upstream named ``app`` (one loopback server on ``port``); its id."""
    found = api.call("GET", f"/v1/workspaces/{ws}/upstreams?name=app")["items"]
    if found:
        return str(found[0]["id"])
    created = api.call(
        "POST",
        f"/v1/workspaces/{ws}/upstreams",
        {"name": "app", "servers": [{"address": f"127.0.0.1:{port}"}]},
    )
    return str(created["id"])


def vhost_body(name: str, host: str, upstream: str) -> dict[str, Any]:
    location = {"path": "/", "upstream": upstream}
    return {"name": name, "server_names": [host], "locations": [location]}


def cached_env(cache_dir: Path) -> dict[str, str]:
    """This environment with a bytecode cache: ``PYTHONPYCACHEPREFIX=cache_dir`` and
    ``PYTHONDONTWRITEBYTECODE`` unset. (Where that variable is set and the packages were
    installed without compiling them, as ``uv sync`` does by default, every process
    compiles every module it imports from source.)"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return env


def wall_s(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall time in seconds of each of ``runs`` runs of ``argv`` after one warm-up run."""
    subprocess.run(argv, capture_output=True, check=True, env=env, timeout=60)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env, timeout=60)
        times.append(time.perf_counter() - start)
    return times


def _edit_loop(
    api: UnixApi, base: str, targets: list[str], count: int, tag: str, latencies: list[float]
) -> None:
    for i in range(count):
        target = targets[i % len(targets)]
        t = time.perf_counter()
        api.call("PATCH", f"{base}/{target}", {"description": f"{tag}-{i}"})
        latencies.append(time.perf_counter() - t)


def sequential_edits(sock: Path, base: str, targets: list[str], edits: int) -> list[float]:
    api = UnixApi(sock)
    try:
        latencies: list[float] = []
        _edit_loop(api, base, targets, edits, "seq", latencies)
        return latencies
    finally:
        api.close()


def concurrent_edits(
    sock: Path, base: str, targets: list[str], edits: int, clients: int
) -> tuple[float, list[float]]:
    """(wall seconds, latencies) of ``edits`` edits spread over ``clients`` threads."""
    apis = [UnixApi(sock) for _ in range(clients)]
    for api in apis:
        api.call("GET", "/v1/status")  # connect before the clock starts
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        mine = targets[k::clients] or targets
        share = edits // clients + (1 if k < edits % clients else 0)
        try:
            barrier.wait(timeout=30)
            _edit_loop(apis[k], base, mine, share, f"c{k}", latencies[k])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=300)
    wall = time.perf_counter() - start
    for api in apis:
        api.close()
    if errors:
        raise RuntimeError(f"a concurrent client failed: {errors[0]!r}")
    if any(t.is_alive() for t in threads):
        raise RuntimeError("concurrent clients did not finish within 300 s")
    return wall, [x for lat in latencies for x in lat]


def creates(sock: Path, base: str, upstream: str, count: int) -> list[float]:
    api = UnixApi(sock)
    try:
        latencies = []
        for i in range(count):
            body = vhost_body(f"new{i}", f"new{i}.api.bench.test", upstream)
            t = time.perf_counter()
            api.call("POST", base, body)
            latencies.append(time.perf_counter() - t)
        return latencies
    finally:
        api.close()


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    mode = args.nginx
    if mode == "managed" and not Path(NGINX).exists():
        progress("nginx is not installed: running render-only")
        mode = "render-only"
    extra: tuple[str, ...] = ("--nginx", mode, "--preset", "lan")
    if mode == "managed":
        extra += ("--nginx-binary", NGINX)
    nodes: list[LocalNode] = []
    try:
        t0 = time.monotonic()
        nodes = start_mesh(root, 1, extra=extra, prefix="api")
        node = nodes[0]
        assert node.process is not None
        pid = node.process.pid
        progress(f"node up in {time.monotonic() - t0:.1f} s ({mode} nginx)")
        sock = node.state / "api.sock"
        api = UnixApi(sock)
        ws = workspace_id(api)
        upstream = ensure_upstream(api, ws)
        base = f"/v1/workspaces/{ws}/vhosts"
        targets = [
            str(api.call("POST", base, vhost_body(f"t{i}", f"t{i}.api.bench.test", upstream))["id"])
            for i in range(args.targets)
        ]
        api.close()
        time.sleep(3.0)  # let the applier settle after the set-up
        load = MachineLoad().start()
        cpu_before = cpu_seconds(pid)

        progress(f"{args.edits} sequential edits...")
        t = time.perf_counter()
        seq = sequential_edits(sock, base, targets, args.edits)
        seq_wall = time.perf_counter() - t
        progress(f"  {args.edits / seq_wall:.0f} edits/s, p50 {_ms(seq, 50)} ms")
        time.sleep(2.5)  # the applier's coalesced pass

        progress(f"{args.edits} edits from {args.clients} concurrent clients...")
        conc_wall, conc = concurrent_edits(sock, base, targets, args.edits, args.clients)
        progress(f"  {args.edits / conc_wall:.0f} edits/s, p50 {_ms(conc, 50)} ms")
        time.sleep(2.5)

        created: list[float] = []
        if args.creates:
            progress(f"{args.creates} sequential creates...")
            t = time.perf_counter()
            created = creates(sock, base, upstream, args.creates)
            create_wall = time.perf_counter() - t
            progress(f"  {args.creates / create_wall:.0f} creates/s")
            time.sleep(2.5)
        node_cpu = cpu_seconds(pid) - cpu_before
        rss = rss_bytes(pid) / 2**20

        progress(f"timing nxmesh --help and nxmesh status, {args.runs} runs each...")
        status_argv = [NXMESH, "status", "--state-dir", str(node.state)]
        helps = wall_s([NXMESH, "--help"], args.runs)
        statuses = wall_s(status_argv, args.runs)
        cached = cached_env(root / "pycache")
        helps_cached = wall_s([NXMESH, "--help"], args.runs, cached)
        statuses_cached = wall_s(status_argv, args.runs, cached)
        progress(
            f"  --help {statistics.median(helps):.3f} s, status "
            f"{statistics.median(statuses):.3f} s; with a bytecode cache "
            f"{statistics.median(helps_cached):.3f} s and "
            f"{statistics.median(statuses_cached):.3f} s"
        )
        load.stop()
    finally:
        stop_all(nodes)
    return {
        "edits_per_s": round(args.edits / seq_wall, 1),
        "concurrent_edits_per_s": round(args.edits / conc_wall, 1),
        "help_s": round(statistics.median(helps), 4),
        "status_s": round(statistics.median(statuses), 4),
        "edits": args.edits,
        "clients": args.clients,
        "edit_p50_ms": _ms(seq, 50),
        "edit_p99_ms": _ms(seq, 99),
        "concurrent_p50_ms": _ms(conc, 50),
        "concurrent_p99_ms": _ms(conc, 99),
        "creates": args.creates,
        "creates_per_s": round(args.creates / create_wall, 1) if created else None,
        "create_p50_ms": _ms(created, 50) if created else None,
        "runs": args.runs,
        "help_p90_s": round(percentile(helps, 90), 4),
        "status_p90_s": round(percentile(statuses, 90), 4),
        "help_cached_s": round(statistics.median(helps_cached), 4),
        "status_cached_s": round(statistics.median(statuses_cached), 4),
        "bytecode_cache_in_env": "PYTHONDONTWRITEBYTECODE" not in os.environ,
        "nginx": mode,
        "node_rss_mb": round(rss, 1),
        "node_cpu_s": round(node_cpu, 2),
        "machine_load": load.summary(),
        "machine": machine(),
        "code": code_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--targets", type=int, default=50, help="vhosts the edits go to")
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20, help="of nxmesh --help and status")
    parser.add_argument("--nginx", choices=("managed", "render-only"), default="managed")
    parser.add_argument("--keep", action="store_true", help="keep the node's directory")
    args = parser.parse_args()
    if args.edits < 1 or args.clients < 1 or args.targets < args.clients or args.runs < 1:
        parser.error("need --edits >= 1, --clients >= 1, --targets >= --clients, --runs >= 1")
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    progress(f"{machine()}; work dir {root}")
    with bench_session(root, keep=args.keep, errors=(RuntimeError, NodeProcessError, OSError)):
        result = run(args, root)
    emit(result)


if __name__ == "__main__":
    main()
