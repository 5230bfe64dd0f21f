"""Trust records and assignments stored in the mesh document (real SQLite stores):
the member set and who serves which workspace follow the document, merges included."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt.documents import workspace_of
from crdt.membership import (
    ALL_WORKSPACES,
    ASSIGNMENTS,
    TRUST,
    MeshState,
    assigned,
    assignment_key,
)
from crdt.store import PersistedDoc, Store
from crdt.trust import Admission, Genesis, Revocation, pack_record
from mesh import Identity

ROOT, A, B, C = (Identity.from_seed(bytes([i + 1]) * 32) for i in range(4))
NOW = 1_800_000_000


def _genesis() -> Genesis:
    return Genesis.create(ROOT, "root", NOW, mesh_id=b"m" * 16)


def _state(tmp_path: Path, name: str, genesis: Genesis) -> MeshState:
    store = Store.open(tmp_path / f"{name}.db")
    return MeshState(PersistedDoc.open(store, "mesh", random.Random(name)), genesis)


def _admit(admitter: Identity, who: Identity, genesis: Genesis, at: int = NOW) -> Admission:
    return Admission.create(admitter, who.public_key, "n", mesh_id=genesis.mesh_id, now=at)


def test_members_follow_admissions_and_revocations_in_the_document(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)
    assert state.members == {ROOT.public_key}
    assert state.add_records([genesis, _admit(ROOT, A, genesis), _admit(A, B, genesis)])
    assert state.is_member(A.public_key)
    assert state.is_member(B.public_key)
    assert not state.is_member(C.public_key)
    revocation = Revocation.create(
        ROOT, B.public_key, mesh_id=genesis.mesh_id, now=NOW + 5, reason="lost"
    )
    state.add_records([revocation])
    assert not state.is_member(B.public_key)
    # Writing the same records again changes nothing (same keys, same bytes).
    assert state.add_records([genesis, revocation]) is None


def test_the_member_set_survives_a_restart_and_merges_from_peers(tmp_path: Path) -> None:
    genesis = _genesis()
    one = _state(tmp_path, "one", genesis)
    two = _state(tmp_path, "two", genesis)
    update_a = one.add_records([_admit(ROOT, A, genesis)])
    update_c = two.add_records([_admit(ROOT, C, genesis)])
    assert update_a is not None
    assert update_c is not None
    one.persisted.apply_remote(update_c)
    two.persisted.apply_remote(update_a)
    assert one.members == two.members == {ROOT.public_key, A.public_key, C.public_key}
    one.persisted.store.close()
    reopened = _state(tmp_path, "one", genesis)
    assert reopened.members == one.members


def test_forged_and_foreign_records_are_rejected_and_reported(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)
    other_mesh = Genesis.create(C, "evil", NOW, mesh_id=b"x" * 16)
    forged = _admit(C, B, genesis)  # C was never admitted
    foreign = _admit(ROOT, A, other_mesh)

    def plant(doc: Doc[Any]) -> None:
        trust = doc.get(TRUST, type=Map)
        trust["forged"] = pack_record(forged)
        trust["foreign"] = pack_record(foreign)
        trust["junk"] = b"\xc1not msgpack"
        trust["wrong-type"] = "a string"

    state.persisted.commit(plant)
    assert state.members == {ROOT.public_key}
    reasons = " | ".join(reason for _, reason in state.problems)
    assert "not chained to the genesis" in reasons
    assert "another mesh" in reasons
    assert "malformed record" in reasons
    assert "not bytes" in reasons


def test_assignments_count_only_for_members_and_merge_add_wins(tmp_path: Path) -> None:
    genesis = _genesis()
    one = _state(tmp_path, "one", genesis)
    two = _state(tmp_path, "two", genesis)
    admitted = one.add_records([genesis, _admit(ROOT, A, genesis)])
    assert admitted is not None
    two.persisted.apply_remote(admitted)
    u1 = one.assign(A.public_key, "shop")
    u2 = two.assign(A.public_key, "blog")  # concurrent: both assignments survive
    u3 = two.assign(C.public_key, "shop")  # C is no member: ignored
    for update in (u2, u3):
        assert update is not None
        one.persisted.apply_remote(update)
    assert u1 is not None
    two.persisted.apply_remote(u1)
    for state in (one, two):
        assert state.workspaces_of(A.public_key) == {"shop", "blog"}
        assert state.servers("shop") == {A.public_key}
        assert not state.serves(C.public_key, "shop")
    # Unassigning reaches every replica; assigning what is already assigned writes nothing.
    assert two.assign(A.public_key, "blog") is None
    removal = one.assign(A.public_key, "blog", serve=False)
    assert removal is not None
    two.persisted.apply_remote(removal)
    assert not one.serves(A.public_key, "blog")
    assert not two.serves(A.public_key, "blog")


def test_a_revoked_node_stops_serving(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)
    state.add_records([genesis, _admit(ROOT, A, genesis)])
    state.assign(A.public_key, "shop")
    assert state.servers("shop") == {A.public_key}
    state.add_records([Revocation.create(ROOT, A.public_key, mesh_id=genesis.mesh_id, now=NOW)])
    assert state.servers("shop") == frozenset()
    assert state.workspaces_of(A.public_key) == frozenset()


def test_malformed_assignments_are_reported(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)

    def plant(doc: Doc[Any]) -> None:
        assignments = doc.get(ASSIGNMENTS, type=Map)
        assignments["zz/shop"] = True
        assignments[assignment_key(ROOT.public_key, "shop")] = "yes"

    state.persisted.commit(plant)
    assert state.servers("shop") == frozenset()
    assert sum("malformed assignment" in r for _, r in state.problems) == 2
    with pytest.raises(ValueError, match="workspace id"):
        state.assign(ROOT.public_key, "a/b")


def test_the_replication_audience_follows_assignments(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)
    state.add_records([genesis, _admit(ROOT, A, genesis), _admit(ROOT, B, genesis)])
    state.assign(A.public_key, "shop")
    assert state.audience(A.public_key, "workspace:shop")
    assert not state.audience(B.public_key, "workspace:shop")
    assert state.audience(B.public_key, "mesh")  # every member replicates the mesh doc
    assert not state.audience(C.public_key, "mesh")
    assert workspace_of("workspace:shop") == "shop"
    assert workspace_of("mesh") is None
    assert workspace_of("workspace:") is None


def test_the_everywhere_assignment_serves_every_workspace(tmp_path: Path) -> None:
    genesis = _genesis()
    state = _state(tmp_path, "a", genesis)
    state.add_records([genesis, _admit(ROOT, A, genesis)])
    state.assign(A.public_key, ALL_WORKSPACES)
    state.assign(ROOT.public_key, "shop")
    # A fresh reader asks serves_all first (the daemon does at start).
    reopened = MeshState(state.persisted, genesis)
    assert reopened.serves_all(A.public_key)
    assert state.serves(A.public_key, "anything")
    assert state.serves_all(A.public_key)
    assert not state.serves_all(ROOT.public_key)
    assert state.servers("shop") == {A.public_key, ROOT.public_key}
    assert state.servers("blog") == {A.public_key}
    assert state.workspaces_of(A.public_key) == frozenset()


def test_replacing_a_nodes_assignments_is_one_update_that_merges(tmp_path: Path) -> None:
    genesis = _genesis()
    one = _state(tmp_path, "one", genesis)
    two = _state(tmp_path, "two", genesis)
    one.add_records([genesis, _admit(ROOT, A, genesis), _admit(ROOT, B, genesis)])
    one.assign(A.public_key, ALL_WORKSPACES)
    one.assign(A.public_key, "old")
    one.assign(B.public_key, "shop")
    two.persisted.apply_remote(one.persisted.doc.get_update())
    updates = one.persisted.store.stats("mesh").updates
    update = one.replace_assignments(A.public_key, ["shop", "blog"])
    assert update is not None
    assert one.persisted.store.stats("mesh").updates == updates + 1  # one transaction
    assert assigned(one.persisted.doc, A.public_key) == {"shop", "blog"}
    assert not one.serves_all(A.public_key)
    assert one.workspaces_of(B.public_key) == {"shop"}  # another node's keys untouched
    assert one.replace_assignments(A.public_key, ["blog", "shop"]) is None  # unchanged
    # Merged with a concurrent assignment made elsewhere: the replacement removed only
    # the keys it saw, so the other node's new one survives.
    concurrent = two.assign(A.public_key, "extra")
    assert concurrent is not None
    one.persisted.apply_remote(concurrent)
    two.persisted.apply_remote(update)
    for state in (one, two):
        assert state.workspaces_of(A.public_key) == {"shop", "blog", "extra"}
        assert not state.serves_all(A.public_key)
    assert one.replace_assignments(A.public_key, []) is not None
    assert assigned(one.persisted.doc, A.public_key) == frozenset()
    assert one.servers("shop") == {B.public_key}
    with pytest.raises(ValueError, match="workspace id"):
        one.replace_assignments(A.public_key, ["a/b"])
