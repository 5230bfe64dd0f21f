"""A real mesh against a real ACME server: three node processes (each with its own
nginx) on 127.0.0.1-3 sharing one HTTP port, pebble validating HTTP-01 on that port,
pebble-challtestsrv resolving the test names to the node addresses.

Everything started is stopped in ``finally`` (nodes and their nginx, pebble, the DNS
server), and the nodes' runtime directories (keys on tmpfs) are removed even for a node
killed with -9.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from node.acme import plan
from node.certs import runtime_certs_dir
from node.localmesh import LocalNode, nxmesh, stop_all, until
from node.ports import free_port
from node.statedir import StateDir
from tests.acme.pebble import ChallTestSrv, Pebble

__all__ = ["Prober", "World", "acme_mesh", "https_get", "served_certificate", "wait_for"]


def _port_on(addresses: list[str]) -> int:
    """A TCP port free on every one of ``addresses``."""
    for _ in range(50):
        port = free_port(addresses[0])
        ok = True
        for address in addresses[1:]:
            with socket.socket() as s:
                try:
                    s.bind((address, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise OSError(f"no port free on all of {addresses}")


def served_certificate(address: str, port: int, name: str, root_pem: str) -> x509.Certificate:
    """The leaf a TLS handshake with SNI ``name`` gets, verified against ``root_pem``
    (ssl.SSLError when it does not verify)."""
    ctx = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection((address, port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def https_get(address: str, port: int, name: str, root_pem: str) -> int:
    """One HTTPS request (a fresh, verified TLS connection); the status code."""
    ctx = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection((address, port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=name) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


@dataclass
class World:
    root: Path
    nodes: list[LocalNode]
    pebble: Pebble
    dns: ChallTestSrv
    http_port: int
    https_port: int
    roots: list[str] = field(default_factory=list)

    def address(self, node: LocalNode) -> str:
        return node.http.rsplit(":", 1)[0]

    def key(self, node: LocalNode) -> bytes:
        return StateDir.at(node.state).read_identity().public_key

    def orderer_for(self, names: list[str], among: list[LocalNode] | None = None) -> LocalNode:
        """The node rendezvous hashing picks for ``names`` (as node.acme.plan does)."""
        nodes = among or self.nodes
        keys = {self.key(n): n for n in nodes}
        best = plan.rank(plan.subject_id(names), keys)[0]
        return keys[best]

    def root_pem(self) -> str:
        """pebble's current issuing root (new at every pebble start)."""
        pem = self.pebble.root_pem()
        if pem not in self.roots:
            self.roots.append(pem)
        return pem

    def leaf(self, node: LocalNode, name: str, root_pem: str | None = None) -> x509.Certificate:
        return served_certificate(
            self.address(node), self.https_port, name, root_pem or self.root_pem()
        )

    def serving(
        self, node: LocalNode, name: str, root: str, *, not_serial: int | None = None
    ) -> Callable[[], bool]:
        """A condition: ``node`` serves a certificate for ``name`` that verifies against
        ``root`` (and is not the one with serial ``not_serial``)."""

        def check() -> bool:
            try:
                leaf = self.leaf(node, name, root)
            except (OSError, ssl.SSLError):
                return False
            return leaf.serial_number != not_serial

        return check

    def served_leaf(
        self, node: LocalNode, name: str, root: str, what: str, wait: float = 60.0
    ) -> x509.Certificate:
        """The first leaf for ``name`` that verifies against ``root``, waiting for one.
        (A handshake that verified once says little about the next: while nginx reloads
        onto the certificate, old workers with the fallback still accept for a moment.)"""
        got: list[x509.Certificate] = []

        def check() -> bool:
            try:
                got.append(self.leaf(node, name, root))
            except (OSError, ssl.SSLError):
                return False
            return True

        wait_for(check, what, wait)
        return got[-1]

    def vhost(self, name: str, names: list[str], via: LocalNode | None = None) -> dict[str, Any]:
        """A ``tls: acme`` vhost answering 200 "ok" on http and https."""
        body = {
            "name": name,
            "server_names": names,
            "entry_points": ["http", "https"],
            "tls": {"mode": "acme"},
            "locations": [{"path": "/", "action": "return", "status": 200, "text": "ok"}],
        }
        return dict((via or self.nodes[0]).api("POST", "/v1/workspaces/default/vhosts", body))

    def subjects(self, node: LocalNode) -> list[dict[str, Any]]:
        return list(node.api("GET", "/v1/workspaces/default/acme")["items"])

    def metric(self, node: LocalNode, name: str) -> float:
        status = node.api("GET", "/v1/status")
        text = httpx.get(f"http://{status['metrics']}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )


def _parallel(fn: Callable[[LocalNode], object], nodes: list[LocalNode]) -> None:
    """``fn`` on every node at once (starting and stopping are mostly waiting)."""
    errors: list[BaseException] = []

    def run(node: LocalNode) -> None:
        try:
            fn(node)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _start(nodes: list[LocalNode]) -> None:
    first = nodes[0]
    nxmesh("init", *first.identity_args(), "--preset", "local")
    first.start()
    tokens = first.cli("invite", "--uses", str(len(nodes))).stdout.strip()
    _parallel(lambda n: nxmesh("join", tokens, *n.identity_args(), "--preset", "local"), nodes[1:])
    _parallel(LocalNode.start, nodes[1:])
    until(
        lambda: all(n.alive_members() == len(nodes) for n in nodes),
        "every node to see every other alive",
    )


def _stop(nodes: list[LocalNode]) -> None:
    _parallel(LocalNode.stop, nodes)  # each leaves with a grace period: not one by one
    stop_all(nodes)  # reaps any nginx left behind


def _cleanup_runtime(nodes: list[LocalNode]) -> None:
    for node in nodes:
        directory = runtime_certs_dir(StateDir.at(node.state).root, node.name).parent
        if directory.name.startswith(node.name):
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def acme_mesh(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    count: int = 3,
    validity: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[World]:
    """``count`` nodes on 127.0.0.1..count with the workspace ``default`` pointed at a
    fresh pebble; the names given to :meth:`World.vhost` must be mapped with
    ``world.dns.add_a`` first."""
    addresses = [f"127.0.0.{i}" for i in range(1, count + 1)]
    http_port, https_port = _port_on(addresses), _port_on(addresses)
    dns = ChallTestSrv(root)
    pebble = Pebble(root, http_port, dns, validity=validity)
    # node.ports never hands out a port twice: a node's mesh port (picked next) cannot
    # be one of the entry points' (CI once saw n3's mesh port taken by n1's nginx).
    nodes = [
        LocalNode(f"n{i}", root, http=f"{a}:{http_port}", https=f"{a}:{https_port}")
        for i, a in enumerate(addresses, 1)
    ]
    for key, value in {
        "NXMESH_ACME_CA_BUNDLE": str(pebble.ca_file),
        "NXMESH_ACME_RETRY_BASE": "2",
        "NXMESH_ACME_SETTLE": "0.5",
        "NXMESH_ACME_CHALLENGE_WAIT": "10",
        **(env or {}),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NXMESH_RUNTIME_DIR", raising=False)
    world = World(root, nodes, pebble, dns, http_port, https_port)
    try:
        dns.start()
        pebble.start()
        _start(nodes)
        nodes[0].api("PATCH", "/v1/workspaces/default", {"acme_directory": pebble.directory})
        yield world
    finally:
        with contextlib.suppress(Exception):
            _stop(nodes)
        pebble.stop()
        dns.stop()
        _cleanup_runtime(nodes)


class Prober:
    """HTTPS requests in a loop from a thread (every node, every name), counting failures."""

    def __init__(self, world: World, names: list[str], root_pem: str) -> None:
        self.world = world
        self.names = names
        self.root_pem = root_pem
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for node in self.world.nodes:
                for name in self.names:
                    try:
                        status = https_get(
                            self.world.address(node), self.world.https_port, name, self.root_pem
                        )
                    except (OSError, ssl.SSLError, ValueError, IndexError) as exc:
                        self.failures.append(f"{node.name} {name}: {exc!r}")
                        continue
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{node.name} {name}: HTTP {status}")

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_for(condition: Callable[[], bool], what: str, wait: float = 60.0) -> float:
    """:func:`until`, returning the seconds it took."""
    start = time.monotonic()
    until(condition, what, wait)
    return time.monotonic() - start


def key_pem_of(node: LocalNode, cert_id: str) -> bytes:
    directory = runtime_certs_dir(StateDir.at(node.state).root, node.name)
    return (directory / f"{cert_id}.key").read_bytes()
