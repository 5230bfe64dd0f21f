"""Joining with a token over real loopback sockets: a seed admits through mesh/'s
admission exchange; expired, reused, forged, wrong-mesh and revoked joins are refused
with a one-line reason; a joiner accepts only answers chained to its token's genesis."""

from __future__ import annotations

import random
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pytest
import trio

from crdt.joining import JoinRefused, JoinRequest, answer_join, check_node_name, verify_answer
from crdt.membership import MeshState
from crdt.replication import Replicator
from crdt.store import PersistedDoc, Store, StoreFull
from crdt.trust import Admission, Genesis, Invite, Revocation, Token
from mesh import AdmissionError, Identity, MeshConfig, MeshNode, request_admission

ROOT = Identity.from_seed(b"\x11" * 32)
NOW = 1_800_000_000


@dataclass
class Seed:
    node: MeshNode
    state: MeshState
    genesis: Genesis
    clock: list[int] = field(default_factory=lambda: [NOW])
    published: list[bytes] = field(default_factory=list)

    def invite(self, *, ttl: int = 3600, uses: int = 1) -> Token:
        invite, secret = Invite.create(
            ROOT, mesh_id=self.genesis.mesh_id, now=self.clock[0], ttl=ttl, uses=uses
        )
        self.state.add_records([invite])
        host, port = self.node.addr
        return Token(self.genesis.mesh_id, ROOT.public_key, (f"{host}:{port}",), invite.id, secret)


@asynccontextmanager
async def running_seed(tmp: Path) -> AsyncIterator[Seed]:
    genesis = Genesis.create(ROOT, "root", NOW, mesh_id=b"j" * 16)
    store = Store.open(tmp / "seed.db")
    state = MeshState(PersistedDoc.open(store, "mesh", random.Random(1)), genesis)
    state.add_records([genesis])
    seed: Seed | None = None

    def admit(peer: bytes, payload: bytes) -> bytes:
        assert seed is not None
        return answer_join(state, ROOT, peer, payload, seed.clock[0], seed.published.append)

    replicator = Replicator(state.is_member, state.audience, admit)
    replicator.replicate("mesh", state.persisted)
    node = MeshNode(
        identity=ROOT, mesh_id=genesis.mesh_id, bind=("127.0.0.1", 0),
        config=MeshConfig.local(), delegate=replicator, boot_epoch=time.time_ns(),
        admissions=True,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        seed = Seed(node, state, genesis)
        yield seed
        nursery.cancel_scope.cancel()
    store.close()


async def _join(token: Token, who: Identity, name: str = "web-1") -> bytes:
    host, port = token.seeds[0].rsplit(":", 1)
    admitted = await request_admission(
        who, token.mesh_id, (host, int(port)), JoinRequest.of(token, name).pack()
    )
    verify_answer(token, who.public_key, admitted.responder, admitted.payload)
    return admitted.payload


async def test_a_valid_token_admits_the_node_and_hands_it_the_mesh_document(
    tmp_path: Path,
) -> None:
    async with running_seed(tmp_path) as seed:
        token = Token.decode(seed.invite().encode())
        joiner = Identity.from_seed(b"\x21" * 32)
        host, port = token.seeds[0].rsplit(":", 1)
        admitted = await request_admission(
            joiner, token.mesh_id, (host, int(port)), JoinRequest.of(token, "web-1").pack()
        )
        joined = verify_answer(token, joiner.public_key, admitted.responder, admitted.payload)
        assert joined.genesis == seed.genesis
        assert joined.members == {ROOT.public_key, joiner.public_key}
        assert seed.state.is_member(joiner.public_key)
        assert seed.state.serves_all(joiner.public_key)
        assert seed.state.verifier.names[joiner.public_key] == "web-1"
        assert len(seed.published) == 1  # the admission goes out as an ordinary update
        # The joiner's copy is the seed's document: it can build the same member set.
        store = Store.open(tmp_path / "joiner.db")
        doc = PersistedDoc.open(store, "mesh")
        doc.apply_remote(joined.mesh_update)
        assert MeshState(doc, joined.genesis).members == seed.state.members
        store.close()


async def test_expired_reused_and_forged_tokens_are_refused_with_a_reason(
    tmp_path: Path,
) -> None:
    async with running_seed(tmp_path) as seed:
        token = seed.invite(ttl=60)
        await _join(token, Identity.from_seed(b"\x22" * 32))
        with pytest.raises(JoinRefused, match="used up"):
            await _join(token, Identity.from_seed(b"\x23" * 32), "web-2")

        expiring = seed.invite(ttl=60)
        seed.clock[0] += 61
        with pytest.raises(JoinRefused, match="expired"):
            await _join(expiring, Identity.from_seed(b"\x24" * 32), "web-3")

        good = seed.invite()
        forged = Token(good.mesh_id, good.genesis_key, good.seeds, good.invite_id, b"\x00" * 32)
        with pytest.raises(JoinRefused, match="wrong invite secret"):
            await _join(forged, Identity.from_seed(b"\x25" * 32), "web-4")
        unknown = Token(good.mesh_id, good.genesis_key, good.seeds, b"\x01" * 16, good.secret)
        with pytest.raises(JoinRefused, match="unknown invite"):
            await _join(unknown, Identity.from_seed(b"\x26" * 32), "web-5")
        # None of the refused keys became members.
        assert len(seed.state.members) == 2


async def test_a_wrong_mesh_token_gets_no_further_than_the_handshake(tmp_path: Path) -> None:
    async with running_seed(tmp_path) as seed:
        good = seed.invite()
        other = Token(b"x" * 16, good.genesis_key, good.seeds, good.invite_id, good.secret)
        with pytest.raises(AdmissionError, match="not a node of this mesh"):
            await _join(other, Identity.from_seed(b"\x27" * 32))


async def test_a_revoked_node_cannot_come_back_with_its_old_key(tmp_path: Path) -> None:
    async with running_seed(tmp_path) as seed:
        node = Identity.from_seed(b"\x28" * 32)
        await _join(seed.invite(), node)
        seed.state.add_records(
            [Revocation.create(ROOT, node.public_key, mesh_id=seed.genesis.mesh_id, now=NOW)]
        )
        assert not seed.state.is_member(node.public_key)
        token = seed.invite()
        with pytest.raises(JoinRefused, match="revoked"):
            await _join(token, node)
        # The refusal did not spend the invite: a new node can still use it.
        await _join(token, Identity.from_seed(b"\x29" * 32), "web-9")


def test_an_answer_not_chained_to_the_tokens_genesis_is_rejected() -> None:
    real = Genesis.create(ROOT, "root", NOW, mesh_id=b"j" * 16)
    impostor = Identity.from_seed(b"\x66" * 32)
    fake_genesis = Genesis.create(impostor, "root", NOW, mesh_id=b"j" * 16)
    joiner = Identity.from_seed(b"\x30" * 32)
    token = Token(real.mesh_id, ROOT.public_key, ("127.0.0.1:1",), b"\x02" * 16, b"\x03" * 32)

    def answer_with(genesis: Genesis, signer: Identity, tmp: str) -> bytes:
        with Store.open(Path(tmp) / f"{signer.fingerprint}.db") as store:
            state = MeshState(PersistedDoc.open(store, "mesh"), genesis)
            state.add_records(
                [
                    genesis,
                    Admission.create(
                        signer, joiner.public_key, "web", mesh_id=genesis.mesh_id, now=NOW
                    ),
                ]
            )
            full = zlib.compress(state.persisted.doc.get_update())
            return msgpack.packb({"v": 1, "mesh": full}, use_bin_type=True)

    with tempfile.TemporaryDirectory() as tmp:
        forged = answer_with(fake_genesis, impostor, tmp)
        with pytest.raises(JoinRefused, match="genesis record"):
            verify_answer(token, joiner.public_key, impostor.public_key, forged)
        genuine = answer_with(real, ROOT, tmp)
        with pytest.raises(JoinRefused, match="not a member"):
            verify_answer(token, joiner.public_key, impostor.public_key, genuine)
        assert verify_answer(token, joiner.public_key, ROOT.public_key, genuine).genesis == real
    with pytest.raises(JoinRefused, match="understand"):
        verify_answer(token, joiner.public_key, ROOT.public_key, b"\xc1")


@pytest.mark.parametrize("name", ["", "Web", "-web", "web-", "a" * 64, "web_1", "wéb"])
def test_node_names_are_dns_labels(name: str) -> None:
    with pytest.raises(ValueError, match="invalid node name"):
        check_node_name(name)
    assert check_node_name("web-1") == "web-1"


async def test_a_seed_whose_disk_is_full_refuses_the_join_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found looking for more of what the fault lab (bench.faults) found on a full disk:
    # the admission write's StoreFull went up through mesh/'s admission exchange and
    # stopped the seed's daemon.
    async with running_seed(tmp_path) as seed:
        token = seed.invite()
        store = seed.state.persisted.store

        def full(doc: str, update: bytes) -> int:
            raise StoreFull("the disk holding seed.db is full")

        monkeypatch.setattr(store, "append", full)
        with pytest.raises(JoinRefused, match=r"cannot store the admission.*full"):
            await _join(token, Identity.from_seed(b"\x31" * 32))
        assert len(seed.state.members) == 1
        assert seed.published == []
        monkeypatch.undo()
        # Nothing was spent: once the disk takes writes again the same token works.
        await _join(token, Identity.from_seed(b"\x31" * 32))
        assert len(seed.state.members) == 2
