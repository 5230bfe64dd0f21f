"""Several real nodes on one machine, as child processes (``nxmesh init|join|run``), each
with its own nginx under its state directory; plus loopback HTTP backends to proxy to.

Used by ``nxmesh demo``, the end-to-end tests and the benchmarks: one implementation of
starting, stopping and killing nodes. Nodes listen on distinct loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx

from node.ports import free_port, free_udp_tcp_port

__all__ = ["LocalNode", "NodeProcessError", "backends", "nxmesh", "start_mesh", "until"]

START_WAIT = 30.0


class NodeProcessError(Exception):
    """A node process failed to start or a command failed; the message says why."""


def nxmesh(*args: str, check: bool = True, wait: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``nxmesh ARGS`` as a child process (this interpreter, this checkout)."""
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=wait,
    )
    if check and result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip()
        raise NodeProcessError(f"nxmesh {' '.join(args[:2])} failed: {message}")
    return result


def until(condition: Callable[[], bool], what: str, wait: float = START_WAIT) -> None:
    """Poll ``condition`` within a bound (other processes give no event to await)."""
    deadline = time.monotonic() + wait
    while not condition():
        if time.monotonic() > deadline:
            raise NodeProcessError(f"timed out after {wait:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class LocalNode:
    """One node: its state directory, addresses and (when running) its process."""

    name: str
    root: Path
    listen: str = field(default_factory=lambda: f"127.0.0.1:{free_udp_tcp_port()}")
    http: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    https: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    process: subprocess.Popen[bytes] | None = None

    @property
    def state(self) -> Path:
        return self.root / self.name

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def identity_args(self) -> list[str]:
        return [
            "--state-dir", str(self.state), "--name", self.name, "--listen", self.listen,
            "--http", self.http, "--https", self.https,
        ]  # fmt: skip

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else "(no log)"

    def start(self) -> None:
        """``nxmesh run``; returns once its API answers."""
        sock = self.state / "api.sock"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", "--state-dir", str(self.state),
                 "--log-json"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_WAIT
        while True:
            if self.process.poll() is not None:
                raise NodeProcessError(f"{self.name} exited at start:\n{self.tail()}")
            if sock.exists():
                with contextlib.suppress(httpx.HTTPError, NodeProcessError):
                    self.api("GET", "/v1/status")
                    return
            if time.monotonic() > deadline:
                raise NodeProcessError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM (leave and stop); SIGKILL after 20 s. Returns the exit status."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self.process = None
        return code

    def kill9(self) -> None:
        """``kill -9`` of the daemon (its nginx keeps serving, as in production)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def reap_nginx(self) -> None:
        """Stop an nginx the daemon left behind (after ``kill -9``)."""
        pid_file = self.state / "nginx" / "logs" / "nginx.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the node's API; :class:`NodeProcessError` on an error status."""
        transport = httpx.HTTPTransport(uds=str(self.state / "api.sock"))
        with httpx.Client(transport=transport, base_url="http://nxmesh", timeout=10) as client:
            response = client.request(method, path, json=body)
        if response.status_code >= 400:
            raise NodeProcessError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return nxmesh(*args, "--state-dir", str(self.state), check=check)

    def get(self, host: str, path: str = "/") -> httpx.Response | None:
        """A request through this node's nginx; None when nothing answers."""
        try:
            return httpx.get(f"http://{self.http}{path}", headers={"Host": host}, timeout=2)
        except httpx.HTTPError:
            return None

    def alive_members(self) -> int:
        return sum(m["state"] == "alive" for m in self.api("GET", "/v1/nodes")["items"])


def start_mesh(
    root: Path, count: int, *, extra: tuple[str, ...] = (), prefix: str = "n"
) -> list[LocalNode]:
    """``count`` running nodes (``<prefix>1..``) joined by tokens from the first one;
    ``extra`` arguments go to init/join (e.g. ``--nginx render-only``). On failure the
    nodes started so far are stopped before the error propagates."""
    nodes = [LocalNode(f"{prefix}{i}", root) for i in range(1, count + 1)]
    try:
        nxmesh("init", *nodes[0].identity_args(), *extra)
        nodes[0].start()
        for node in nodes[1:]:
            token = nodes[0].cli("invite").stdout.strip()
            nxmesh("join", token, *node.identity_args(), *extra)
            node.start()
        until(
            lambda: all(n.alive_members() == count for n in nodes),
            "every node to see every other alive",
        )
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes: list[LocalNode]) -> None:
    for node in nodes:
        node.stop()
    for node in nodes:
        node.reap_nginx()


class _Backend(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        data = f"backend {port} via {self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def backends(n: int = 1) -> Iterator[list[int]]:
    """``n`` HTTP backends on loopback answering ``backend PORT via HOST``; their ports."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Backend) for _ in range(n)]
    for s in servers:
        Thread(target=s.serve_forever, daemon=True).start()
    try:
        yield [int(s.server_address[1]) for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
