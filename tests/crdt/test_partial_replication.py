"""Partial replication on real loopback sockets: a node that does not serve workspace B
never receives B's updates (topic broadcasts go to B's servers only, anti-entropy sends
only documents a peer names), nor B's secrets - not even as ciphertext."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from pycrdt import Doc, Map

from crdt.documents import WorkspaceDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Upstream
from crdt.secrets import Keyring
from crdt.vault import SEALED
from tests.crdt.meshes import IDS, fleet
from tests.crdt.strategies import upstream_dict

B = "shop"
SERVERS = {IDS[0].public_key, IDS[1].public_key}
SECRET = b"-----BEGIN PRIVATE KEY----- shop's key"


def _read_store_files(tmp: Path, name: str) -> bytes:
    return b"".join(p.read_bytes() for p in tmp.glob(f"{name}*"))  # db, -wal, -shm


def audience(peer: bytes, document: str) -> bool:
    return document == "mesh" or peer in SERVERS


async def test_a_node_not_serving_b_never_receives_bs_document_or_secrets(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path) as f:
        a = await f.start(0, workspaces=(B,), audience=audience)
        b = await f.start(1, workspaces=(B,), audience=audience)
        outsider = await f.start(2, audience=audience)
        for r in (b, outsider):
            await r.node.join([a.node.addr])
        await f.until(lambda: all(len(r.node.members()) == 3 for r in f.replicas))

        # An upstream, and a private key sealed with B's data key, both through broadcasts.
        doc = a.workspace(B)
        _, update = WorkspaceDocument.edit(
            doc, lambda ws: ws.put(Upstream.model_validate(upstream_dict()))
        )
        assert update is not None
        a.node.broadcast(*Replicator.publish(workspace_document(B), update))
        keyring = Keyring(B, is_member=SERVERS.__contains__)
        wraps = keyring.rotate(IDS[0], sorted(SERVERS), now=1)
        blob = keyring.seal(SECRET, "cert-1", IDS[0])

        def store_secret(d: Doc[Any]) -> None:
            d.get(SEALED, type=Map)["cert-1"] = blob

        secret_update = doc.commit(store_secret)
        assert secret_update is not None
        a.node.broadcast(*Replicator.publish(workspace_document(B), secret_update))
        a.edit_mesh("visible to all")  # the mesh document still reaches everyone

        await f.until(
            lambda: (
                b.workspace(B).doc.get_state() == doc.doc.get_state()
                and "visible to all" in outsider.organizations()
            )
        )
        # Several anti-entropy rounds pass (push-pull every second) without B leaking.
        for _ in range(3):
            await outsider.node.join([a.node.addr])
        assert B not in outsider.topics
        assert outsider.replicator.drops["not_replicated"] == 0  # nothing even arrived
        assert workspace_document(B) not in outsider.store.documents()
        on_disk = await trio.to_thread.run_sync(_read_store_files, tmp_path, "node2.db")
        assert blob not in on_disk
        assert b"BEGIN PRIVATE KEY" not in on_disk
        # The serving node got both, and can open the secret with its own wrap.
        assert B in b.topics
        theirs = Keyring(B, wraps, is_member=SERVERS.__contains__)
        assert (
            theirs.open(bytes(b.workspace(B).doc.get(SEALED, type=Map)["cert-1"]), "cert-1", IDS[1])
            == SECRET
        )
