"""``nxmesh demo``: a local mesh of three real nodes, each with its own nginx.

Everything lives under one directory (a fresh temporary one unless ``--dir``): three
state directories, their nginx prefixes, and the logs. The nodes listen on distinct
loopback ports; each nginx serves the ``http`` entry point on its own port. A small
sample upstream (two HTTP backends on loopback) is started, one upstream and one vhost
are created through node 1's API, and the demo waits until every node's nginx serves
the vhost. Ctrl-C stops everything it started and removes the directory it created.
Without nginx the nodes run render-only, and the demo says so.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx

from node.ports import free_port, free_udp_tcp_port

__all__ = ["DemoError", "run_demo"]

NODES = 3
VHOST = "shop.demo.test"
READY_WAIT = 60.0


class DemoError(Exception):
    """The demo could not start; the message says why."""


class _Backend(BaseHTTPRequestHandler):
    server_version = "nxmesh-demo-backend"

    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        data = f"hello from backend {port} via {self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class _Node:
    name: str
    state: Path
    listen: str
    http: str
    https: str
    process: subprocess.Popen[bytes] | None = None


def _nxmesh(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


def _checked(*args: str) -> str:
    result = _nxmesh(*args)
    if result.returncode != 0:
        raise DemoError(f"nxmesh {args[0]} failed: {result.stderr.strip() or result.stdout}")
    return result.stdout.strip()


@contextmanager
def _backends() -> Iterator[list[int]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Backend) for _ in range(2)]
    threads = [Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield [int(s.server_address[1]) for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _start(node: _Node, logs: Path) -> None:
    log = open(logs / f"{node.name}.log", "ab")  # noqa: SIM115 - the child keeps it open
    node.process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "run",
            "--state-dir",
            str(node.state),
            "--log-json",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not (node.state / "api.sock").exists():
        if node.process.poll() is not None:
            raise DemoError(f"{node.name} exited at start; see {logs / (node.name + '.log')}")
        if time.monotonic() > deadline:
            raise DemoError(f"{node.name} did not start within 20 s")
        time.sleep(0.05)


def _stop(nodes: list[_Node]) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    for node in nodes:
        if node.process is not None:
            try:
                node.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.process.kill()


def _identity_args(node: _Node) -> list[str]:
    return [
        "--state-dir", str(node.state), "--name", node.name, "--listen", node.listen,
        "--http", node.http, "--https", node.https,
    ]  # fmt: skip


def _serves(node: _Node, expect: str) -> bool:
    try:
        response = httpx.get(f"http://{node.http}/", headers={"Host": VHOST}, timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and expect in response.text


def _applied(node: _Node, vhost_id: str) -> bool:
    conf = node.state / "nginx" / "conf"
    return any(vhost_id in p.name for p in conf.glob("http.d/*/vhosts/*.conf"))


def _mesh_port() -> int:
    try:
        return free_udp_tcp_port()
    except OSError as exc:
        raise DemoError(str(exc)) from None


def run_demo(directory: Path | None, *, keep: bool = False, wait_forever: bool = True) -> int:
    """Run the demo; returns the exit status."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    mode = "managed" if nginx else "render-only"
    created = directory is None
    root = Path(tempfile.mkdtemp(prefix="nxmesh-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    nodes = [
        _Node(
            name=f"node{i}",
            state=root / f"node{i}",
            listen=f"127.0.0.1:{_mesh_port()}",
            http=f"127.0.0.1:{free_port()}",
            https=f"127.0.0.1:{free_port()}",
        )
        for i in range(1, NODES + 1)
    ]
    if not nginx:
        print(
            "nginx is not installed: the nodes run render-only (install it: apt-get install nginx)"
        )
    try:
        with _backends() as ports:
            first = nodes[0]
            common = ["--nginx", mode, "--preset", "local"]
            if nginx:
                common += ["--nginx-binary", nginx]
            _checked("init", *_identity_args(first), *common)
            _start(first, logs)
            for node in nodes[1:]:
                token = _checked("invite", "--state-dir", str(first.state))
                _checked("join", token, *_identity_args(node), *common)
                _start(node, logs)
            servers = [a for p in ports for a in ("--server", f"127.0.0.1:{p}")]
            _checked("upstream", "create", "app", *servers, "--state-dir", str(first.state))
            created_vhost = _checked(
                "vhost", "create", "shop", "--server-name", VHOST, "--upstream", "app",
                "--state-dir", str(first.state), "--json",
            )  # fmt: skip
            vhost_id = json.loads(created_vhost)["id"]
            deadline = time.monotonic() + READY_WAIT
            ready = _serves if nginx else (lambda n, _e: _applied(n, vhost_id))
            pending = list(nodes)
            while pending and time.monotonic() < deadline:
                pending = [n for n in pending if not ready(n, "hello from backend")]
                time.sleep(0.1)
            if pending:
                names = ", ".join(n.name for n in pending)
                raise DemoError(
                    f"{names} did not serve the vhost within {READY_WAIT:g} s; see {logs}"
                )
            _explain(nodes, root, bool(nginx))
            if not wait_forever:
                return 0
            with suppress(KeyboardInterrupt):
                signal.pause()
            # A terminal's Ctrl-C may arrive twice (to us and relayed by a wrapper such as
            # `uv run`): the clean-up below must not be interrupted by the second.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("\nstopping the demo mesh...")
            return 0
    finally:
        _stop(nodes)
        if not keep:
            for path in [*(n.state for n in nodes), logs] + ([root] if created else []):
                shutil.rmtree(path, ignore_errors=True)


def _explain(nodes: list[_Node], root: Path, nginx: bool) -> None:
    print(f"\nA mesh of {len(nodes)} nodes is running under {root}\n")
    for node in nodes:
        print(f"  {node.name}: mesh {node.listen}, nginx on {node.http} (https {node.https})")
    print("\nEvery node's nginx serves the same vhost (two backends, round robin):")
    for node in nodes:
        if nginx:
            print(f"  curl -H 'Host: {VHOST}' http://{node.http}/")
        else:
            print(f"  cat {node.state}/nginx/conf/http.d/*/vhosts/*.conf")
    first = nodes[0].state
    print("\nLook around:")
    print(f"  export NXMESH_STATE_DIR={first}")
    print("  nxmesh members")
    print("  nxmesh vhost list")
    print("  nxmesh tui")
    print("  nxmesh vhost create blog --server-name blog.demo.test --upstream app \\")
    print(f"      --state-dir {nodes[2].state}")
    print("\nCtrl-C stops every node and removes what the demo created.")
    sys.stdout.flush()
