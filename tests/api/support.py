"""A served API for tests: a real Store (SQLite in a temporary directory), the real app,
served on a real Unix socket by :func:`node.api.server.serve`; membership in memory."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from crdt.documents import MESH_DOCUMENT, Document, MeshDocument, WorkspaceDocument
from crdt.membership import ALL_WORKSPACES, assigned, replace_assignments
from crdt.store import PersistedDoc, Store
from node.api.access import AccessPolicy
from node.api.app import create_app
from node.api.events import EventHub
from node.api.server import serve
from node.api.services import Invite, LocalServices, Member, NodeRefused, UnknownNode

BASE = "http://nxmesh"


class MemoryMembership:
    """Members in a list; labels, invites and revocation change only that list.
    Assignments are real: in the ``mesh`` document's ``assignments`` (each member's
    ``key`` is 64 hex digits, read as its node key), written as the daemon writes them."""

    def __init__(
        self,
        members: list[Member] | None = None,
        mesh: Callable[[], PersistedDoc | None] | None = None,
    ) -> None:
        self.items: list[Member] = members if members is not None else default_members()
        self.invites: list[Invite] = []
        self.mesh = mesh
        self.publish: Callable[[str, bytes], None] = lambda _name, _update: None

    def _mesh(self) -> PersistedDoc:
        persisted = self.mesh() if self.mesh is not None else None
        assert persisted is not None, "no mesh document to assign in"
        return persisted

    def _member(self, item: Member) -> Member:
        member = Member(**item)
        if self.mesh is not None:
            served = assigned(self._mesh().doc, bytes.fromhex(item["key"]))
            member["workspaces"] = [ALL_WORKSPACES] if ALL_WORKSPACES in served else sorted(served)
        return member

    def members(self) -> list[Member]:
        return [self._member(m) for m in self.items]

    def _find(self, node: str) -> Member:
        for m in self.items:
            if m["name"] == node:
                return m
        raise UnknownNode(f"node {node!r} is not a member")

    async def set_labels(self, node: str, labels: dict[str, str]) -> Member:
        member = self._find(node)
        member["labels"] = dict(labels)
        return self._member(member)

    async def set_workspaces(self, node: str, workspaces: list[str]) -> Member:
        member = self._find(node)
        if member["state"] == "revoked":
            raise NodeRefused(f"{node} is revoked: it cannot be assigned workspaces")
        persisted = self._mesh()
        update = replace_assignments(persisted, bytes.fromhex(member["key"]), workspaces)
        if update is not None:
            self.publish(persisted.name, update)
        return self._member(member)

    async def create_invite(self, ttl: float, uses: int) -> Invite:
        invite = Invite(token=secrets.token_urlsafe(24), expires_at=time.time() + ttl, uses=uses)
        self.invites.append(invite)
        return invite

    async def revoke(self, node: str) -> Member:
        member = self._find(node)
        if member["state"] == "revoked":
            raise NodeRefused(f"node {node!r} is already revoked")
        member["state"] = "revoked"
        return self._member(member)


def default_members() -> list[Member]:
    out = []
    for i, state in enumerate(("alive", "alive", "suspect"), start=1):
        key = hashlib.sha256(f"node{i}".encode()).hexdigest()
        out.append(
            Member(
                name=f"node{i}",
                key=key,
                address=f"127.0.0.{i}:7946",
                state=state,
                labels={"zone": "a" if i < 3 else "b"},
                workspaces=[],
                metadata={"version": "0.1.0"},
            )
        )
    return out


@dataclass
class Served:
    """One served API and what tests look at."""

    socket: Path
    store: Store
    services: LocalServices
    membership: MemoryMembership
    published: list[tuple[str, bytes]] = field(default_factory=list)

    def client(self, **kw: Any) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        return httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30, **kw)

    def sync_client(self, **kw: Any) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(transport=transport, base_url=BASE, timeout=30, **kw)

    def document(self, name: str = MESH_DOCUMENT) -> Document:
        persisted = self.services.document(name)
        assert persisted is not None
        kind = MeshDocument if name == MESH_DOCUMENT else WorkspaceDocument
        return kind(persisted.doc)

    def snapshot(self) -> dict[str, Any]:
        """Every document's content and log length: compare before and after a refusal."""
        out: dict[str, Any] = {}
        for name in self.store.documents():
            stats = self.store.stats(name)
            if stats.last_seq:  # a document opened but never written holds nothing
                out[name] = (self.document(name).to_json(), stats.updates, stats.last_seq)
        return {"docs": out, "published": len(self.published)}


def make_served(
    directory: Path,
    *,
    policy: AccessPolicy | None = None,
    max_body: int = 64 * 1024,
    heartbeat: float = 15.0,
    buffer: int = 1024,
) -> tuple[Served, Any]:
    """The Served record and the app (not yet served)."""
    store = Store.open(directory / "store.db")
    membership = MemoryMembership()
    served = Served(directory / "api.sock", store, None, membership)  # type: ignore[arg-type]
    services = LocalServices(
        store,
        membership,
        node_name="node1",
        events=EventHub(buffer),
        on_publish=lambda name, update: served.published.append((name, update)),
    )
    served.services = services
    membership.mesh = partial(services.document, MESH_DOCUMENT)
    membership.publish = services.published
    app = create_app(services, policy=policy, max_body=max_body, heartbeat=heartbeat)
    return served, app


async def start(nursery: trio.Nursery, directory: Path, **kw: Any) -> Served:
    """Serve in ``nursery`` (cancelled at the end of the test)."""
    served, app = make_served(directory, **kw)
    await nursery.start(serve, app, served.socket)
    return served


@contextmanager
def served_in_thread(directory: Path, **kw: Any) -> Iterator[Served]:
    """Serve from a trio loop in a background thread, for synchronous tests."""
    served, app = make_served(directory, **kw)
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            state["cancel"] = nursery.cancel_scope
            state["token"] = trio.lowlevel.current_trio_token()
            await nursery.start(serve, app, served.socket)
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # surfaced by the caller
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="nxmesh-api", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in state:
        raise RuntimeError("the API did not start") from state["error"]
    try:
        yield served
    finally:
        state["token"].run_sync_soon(state["cancel"].cancel)
        thread.join(30)
        served.store.close()


async def seed(client: httpx.AsyncClient) -> tuple[str, str]:
    """An organization and a workspace named 'default': (org id, workspace id)."""
    r = await client.post("/v1/organizations", json={"name": "acme"})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    r = await client.post("/v1/workspaces", json={"name": "default", "organization": org})
    assert r.status_code == 201, r.text
    return org, r.json()["id"]
