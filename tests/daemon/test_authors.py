"""The daemon's side of authorship: a stamp alone leaves the desired-state digest alone,
and every document change is announced with its origin."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import trio
from pycrdt import Doc, Map

from crdt.documents import MeshDocument, WorkspaceDocument
from crdt.schema import STAMP_FIELDS, Invalid, Stamp, Upstream
from crdt.store import PersistedDoc
from node.daemon import Daemon
from node.replica import _unstamped
from tests.daemon.test_daemon import _daemon


def _stamped_upstream(daemon: Daemon) -> tuple[PersistedDoc, Upstream]:
    """The default workspace's document, with an upstream created by alice."""
    persisted = daemon.replica.workspace_docs["default"]
    data = {"name": "app", "servers": [{"address": "127.0.0.1:9"}]}
    stamp = Stamp.now("solo", "alice", "operator")
    up, _ = WorkspaceDocument.edit(persisted, lambda d: d.create(Upstream, data, stamp))
    return persisted, up


def test_a_stamp_alone_leaves_the_desired_state_digest_alone(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    try:
        persisted, up = _stamped_upstream(daemon)
        before = daemon.replica.desired().digest

        def restamp(doc: Doc[Any]) -> None:  # as a peer's concurrent stamp would
            entity = doc.get("upstreams", type=Map)[up.id]
            for key, value in Stamp.now("n9", "bob", "admin").fields().items():
                entity[key] = value

        persisted.commit(restamp)
        assert daemon.replica.desired().digest == before
        WorkspaceDocument.edit(persisted, lambda d: d.patch(Upstream, up.id, {"keepalive": 2}))
        assert daemon.replica.desired().digest != before
    finally:
        daemon.store.close()


async def test_a_local_commit_is_announced_as_local_and_a_peer_update_as_peer(
    tmp_path: Path,
) -> None:
    daemon = _daemon(tmp_path)
    try:
        async with daemon.events.subscribe() as sub:
            daemon.replica.changed("mesh")  # a commit made here (the API, ACME...)
            assert daemon.replica.replicator.on_applied is not None
            daemon.replica.replicator.on_applied("mesh")  # a peer's update applied
            with trio.fail_after(5):
                events = [await sub.receive(), await sub.receive()]
        assert [(e["type"], e["document"], e["origin"], e["changes"]) for e in events] == [
            ("document", "mesh", "local", 0),
            ("document", "mesh", "peer", 0),
        ]
    finally:
        daemon.store.close()


def test_the_incremental_read_gives_the_digest_of_a_full_read(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    try:
        persisted, up = _stamped_upstream(daemon)

        def full_read_digest() -> str:
            settings = MeshDocument(daemon.replica.mesh_doc.doc).settings()
            assert not isinstance(settings, Invalid)
            shared = settings.model_dump_json(exclude=set(STAMP_FIELDS)).encode()
            stored = WorkspaceDocument(persisted.doc).to_json()
            content = json.dumps(_unstamped(stored), sort_keys=True).encode()
            return hashlib.sha256(shared + content).hexdigest()[:12]

        first = daemon.replica.desired()
        assert first.workspace_digests["default"] == full_read_digest()
        again = daemon.replica.desired()
        assert again.workspaces["default"] is first.workspaces["default"], "nothing moved"
        WorkspaceDocument.edit(persisted, lambda d: d.patch(Upstream, up.id, {"keepalive": 2}))
        moved = daemon.replica.desired()
        assert moved.workspace_digests["default"] == full_read_digest()
        assert moved.workspace_digests["default"] != first.workspace_digests["default"]
        assert moved.workspaces["default"].upstreams[up.id].keepalive == 2
    finally:
        daemon.store.close()
