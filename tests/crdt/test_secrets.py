"""crdt/secrets.py: sealed secrets, per-node wrapped data keys, rotation on revocation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgpack
import pytest

from crdt.secrets import (
    HEADER_LEN,
    DataKey,
    Keyring,
    SecretError,
    WrappedKey,
    blob_key,
)
from mesh import Identity

NOW = 1_700_000_000
WS = "ws-alpha"
PEM = b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n"

A = Identity.from_seed(b"\x0a" * 32)
B = Identity.from_seed(b"\x0b" * 32)
C = Identity.from_seed(b"\x0c" * 32)
D = Identity.from_seed(b"\x0d" * 32)
OUTSIDER = Identity.from_seed(b"\x0e" * 32)


class Members:
    """A mutable stand-in for TrustVerifier.is_member (plus workspace assignment)."""

    def __init__(self, *identities: Identity) -> None:
        self.keys = {i.public_key for i in identities}

    def __call__(self, key: bytes) -> bool:
        return key in self.keys

    def revoke(self, identity: Identity) -> None:
        self.keys.discard(identity.public_key)

    def admit(self, identity: Identity) -> None:
        self.keys.add(identity.public_key)


def ring_of(members: Members, *holders: Identity) -> Keyring:
    ring = Keyring(WS, is_member=members)
    ring.rotate(holders[0], [h.public_key for h in holders], NOW)
    return ring


def replica(ring: Keyring, members: Members) -> Keyring:
    """Another node's keyring, rebuilt from the stored dicts (as a peer would)."""
    return Keyring(WS, [w.to_dict() for w in ring.wraps.values()], is_member=members)


def _walk(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, str):
        yield value.encode()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k)
            yield from _walk(v)


# --- DataKey ---------------------------------------------------------------------------


def test_seal_open_round_trip() -> None:
    key = DataKey.generate(WS, 1)
    blob = key.seal(PEM, "cert-1/key")
    assert PEM not in blob
    assert key.open(blob, "cert-1/key") == PEM
    assert blob_key(blob) == (1, key.key_id)
    # A fresh nonce every time.
    assert key.seal(PEM, "cert-1/key") != blob


def test_tampering_is_refused() -> None:
    key = DataKey.generate(WS, 1)
    blob = key.seal(PEM, "cert-1/key")
    for index in (HEADER_LEN - 1, HEADER_LEN, len(blob) - 1):  # nonce, ciphertext, tag
        damaged = bytearray(blob)
        damaged[index] ^= 0x01
        with pytest.raises(SecretError, match="tampered"):
            key.open(bytes(damaged), "cert-1/key")
    with pytest.raises(SecretError, match="too short"):
        key.open(blob[:20], "cert-1/key")
    with pytest.raises(SecretError, match="version"):
        key.open(b"\x09" + blob[1:], "cert-1/key")


def test_wrong_aad_is_refused() -> None:
    key = DataKey.generate(WS, 1)
    blob = key.seal(PEM, "cert-1/key")
    with pytest.raises(SecretError, match="moved from another secret id"):
        key.open(blob, "cert-2/key")


def test_blob_moved_to_another_workspace_fails() -> None:
    raw = b"\x42" * 32
    here = DataKey(WS, 1, raw)
    there = DataKey("ws-beta", 1, raw)  # even with the very same key bytes
    blob = here.seal(PEM, "cert-1/key")
    with pytest.raises(SecretError):
        there.open(blob, "cert-1/key")


def test_blob_names_its_generation() -> None:
    old, new = DataKey.generate(WS, 1), DataKey.generate(WS, 2)
    with pytest.raises(SecretError, match="generation 1"):
        new.open(old.seal(PEM, "s"), "s")
    # Rewriting the header to name another key does not help either.
    blob = old.seal(PEM, "s")
    forged = blob[:1] + (2).to_bytes(8, "big") + new.key_id + blob[25:]
    with pytest.raises(SecretError, match="tampered"):
        new.open(forged, "s")


def test_data_key_repr_hides_the_key() -> None:
    key = DataKey.generate(WS, 1)
    assert key.key.hex() not in repr(key)
    assert repr(key.key) not in repr(key)


# --- wraps -----------------------------------------------------------------------------


def test_wrap_for_three_members_each_opens() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    blob = ring.seal(PEM, "cert-1/key", A)
    for node in (A, B, C):
        assert replica(ring, members).open(blob, "cert-1/key", node) == PEM
        assert replica(ring, members).current(node).key == ring.current(A).key
    with pytest.raises(SecretError, match="no key for this node"):
        replica(ring, members).open(blob, "cert-1/key", OUTSIDER)


def test_wrap_round_trips_and_survives_msgpack() -> None:
    ring = ring_of(Members(A, B), A, B)
    for wrap in ring.wraps.values():
        stored = msgpack.unpackb(msgpack.packb(wrap.to_dict(), use_bin_type=True), raw=False)
        assert WrappedKey.from_dict(stored) == wrap


def test_unwrap_checks_recipient_and_key_id() -> None:
    ring = ring_of(Members(A, B), A, B)
    wrap_a = next(w for w in ring.wraps.values() if w.recipient == A.public_key)
    with pytest.raises(SecretError, match="not"):
        wrap_a.unwrap(B)
    # A wrap claiming another key id than the key it holds.
    lying = replace(wrap_a, key_id=b"\x00" * 16)
    with pytest.raises(SecretError, match="does not match its key id"):
        lying.unwrap(A)


def test_forged_malformed_and_foreign_wraps_go_to_problems() -> None:
    members = Members(A, B)
    ring = ring_of(members, A, B)
    wrap = next(iter(ring.wraps.values()))
    forged = replace(wrap, recipient=OUTSIDER.public_key).to_dict()  # signature no longer fits
    malformed = {**wrap.to_dict(), "sealed": b"short"}
    foreign_ring = Keyring("ws-beta", is_member=members)
    foreign = foreign_ring.rotate(A, [A.public_key], NOW)[0].to_dict()
    check = Keyring(WS, [forged, malformed, foreign, {"kind": "nope"}], is_member=members)
    assert check.wraps == {}
    reasons = " | ".join(reason for _, reason in check.problems)
    assert "forged or damaged signature" in reasons
    assert "'sealed' must be" in reasons
    assert "another workspace" in reasons
    assert "not a wrapped_key record" in reasons


def test_no_plaintext_key_material_in_stored_records() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    ring.rotate(B, [A.public_key, B.public_key], NOW + 1)
    keys = [ring.key(A, g).key for g in ring.generations()]
    blob = ring.seal(PEM, "cert-1/key", A)
    stored = [w.to_dict() for w in ring.wraps.values()]
    everything = b"\x00".join(b for d in stored for b in _walk(d)) + blob
    everything += msgpack.packb(stored, use_bin_type=True)
    for key in keys:
        assert key not in everything
    assert PEM not in everything
    for seed in (A.seed, B.seed, C.seed):
        assert seed not in everything


# --- rotation and revocation -----------------------------------------------------------


def test_revoked_member_learns_nothing_sealed_after_rotation() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    old_blob = ring.seal(PEM, "cert-1/key", A)
    # C remembers every key it ever held.
    c_ring = replica(ring, members)
    c_keys = [c_ring.key(C, g) for g in c_ring.generations()]

    members.revoke(C)
    assert ring.needs_rotation() is not None
    with pytest.raises(SecretError, match="held by non-members"):
        ring.current(A)  # fail closed: C holds the current key
    new_wraps = ring.rotate(B, [A.public_key, B.public_key], NOW + 60)
    assert {w.recipient for w in new_wraps} == {A.public_key, B.public_key}
    assert ring.needs_rotation() is None

    secret = b"new private key after revocation"
    new_blob = replica(ring, members).seal(secret, "cert-2/key", A)
    assert blob_key(new_blob)[0] == 2
    for node in (A, B):
        assert replica(ring, members).open(new_blob, "cert-2/key", node) == secret
        assert replica(ring, members).open(old_blob, "cert-1/key", node) == PEM
    # C: no wrap of the new generation, and none of its old keys opens the new blob.
    with pytest.raises(SecretError, match="no key for this node"):
        replica(ring, members).open(new_blob, "cert-2/key", C)
    for key in c_keys:
        with pytest.raises(SecretError):
            key.open(new_blob, "cert-2/key")
    assert all(w.recipient != C.public_key for w in new_wraps)


def test_rotation_refuses_non_members_and_outsiders() -> None:
    members = Members(A, B)
    ring = ring_of(members, A, B)
    with pytest.raises(SecretError, match="may not hold"):
        ring.rotate(A, [A.public_key, OUTSIDER.public_key], NOW)
    with pytest.raises(SecretError, match="not a member"):
        ring.rotate(OUTSIDER, [A.public_key], NOW)
    with pytest.raises(SecretError, match=r"not a valid node key|32 bytes"):
        ring.rotate(A, [b"\x00" * 5], NOW)


def test_revoked_node_cannot_plant_a_future_generation() -> None:
    """Before its revocation C writes a generation-99 key it knows, wrapped for everyone;
    after it, that generation never becomes the one secrets are sealed under."""
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    planted_key = DataKey.generate(WS, 99)
    planted = [WrappedKey.create(C, planted_key, n.public_key, now=NOW) for n in (A, B, C)]
    ring.add(planted)
    assert ring.newest() == (99, planted_key.key_id)  # while C is a member it is legitimate

    members.revoke(C)
    ring.rotate(A, [A.public_key, B.public_key], NOW + 60)
    current = replica(ring, members).current(B)
    assert current.generation == 2  # the planted generation is ignored for sealing
    assert current.key != planted_key.key
    blob = replica(ring, members).seal(b"s", "x", B)
    with pytest.raises(SecretError):
        planted_key.open(blob, "x")


def test_rewrap_by_a_member_does_not_launder_a_revoked_creator() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    planted_key = DataKey.generate(WS, 50)
    ring.add([WrappedKey.create(C, planted_key, A.public_key, now=NOW)])
    members.admit(D)
    ring.rewrap_for(A, D.public_key, NOW)  # A passes generation 50 on, creator still C
    members.revoke(C)
    assert ring.newest() == (1, ring.generations()[0][1])


def test_concurrent_rotations_converge() -> None:
    members = Members(A, B)
    base = ring_of(members, A, B)
    left, right = replica(base, members), replica(base, members)
    wraps_a = left.rotate(A, [A.public_key, B.public_key], NOW + 1)
    wraps_b = right.rotate(B, [A.public_key, B.public_key], NOW + 1)
    blob_left = left.seal(b"left", "l", A)
    blob_right = right.seal(b"right", "r", B)
    merged_1 = replica(base, members)
    merged_1.add(wraps_a + wraps_b)
    merged_2 = replica(base, members)
    merged_2.add(wraps_b + wraps_a)
    assert merged_1.newest() == merged_2.newest()
    newest = merged_1.newest()
    assert newest is not None
    assert newest[0] == 2
    assert merged_1.current(A).key == merged_2.current(B).key
    for node in (A, B):
        assert merged_1.open(blob_left, "l", node) == b"left"
        assert merged_1.open(blob_right, "r", node) == b"right"


# --- admission / assignment ------------------------------------------------------------


def test_new_member_gets_a_rewrap_and_opens_everything() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    before = ring.seal(PEM, "cert-1/key", A)
    members.revoke(C)
    ring.rotate(A, [A.public_key, B.public_key], NOW + 60)
    after = ring.seal(b"second", "cert-2/key", B)

    with pytest.raises(SecretError, match="may not hold"):
        ring.rewrap_for(A, D.public_key, NOW + 100)  # not admitted yet
    members.admit(D)
    assert ring.lacking(members.keys) == {D.public_key}
    with pytest.raises(SecretError, match="another holder must rewrap"):
        ring.rewrap_for(C, D.public_key, NOW + 100)  # C lacks the newest key
    wraps = ring.rewrap_for(B, D.public_key, NOW + 100)
    assert [w.generation for w in wraps] == [1, 2]
    assert all(w.recipient == D.public_key and w.wrapped_by == B.public_key for w in wraps)
    assert ring.lacking(members.keys) == set()
    assert ring.rewrap_for(B, D.public_key, NOW + 101) == []  # idempotent

    d_ring = replica(ring, members)
    assert d_ring.open(before, "cert-1/key", D) == PEM
    assert d_ring.open(after, "cert-2/key", D) == b"second"
    assert d_ring.open(d_ring.seal(b"third", "c3", D), "c3", A) == b"third"


def test_current_refuses_before_any_key_and_before_the_wrap_arrives() -> None:
    members = Members(A, B)
    ring = Keyring(WS, is_member=members)
    with pytest.raises(SecretError, match="no data key yet"):
        ring.current(A)
    ring.rotate(A, [A.public_key], NOW)
    with pytest.raises(SecretError, match="no key for this node"):
        ring.current(B)  # never falls back to an older generation


def test_reseal_moves_old_secrets_to_the_current_key() -> None:
    members = Members(A, B, C)
    ring = ring_of(members, A, B, C)
    old = ring.seal(PEM, "cert-1/key", A)
    members.revoke(C)
    ring.rotate(A, [A.public_key, B.public_key], NOW + 60)
    new = ring.reseal(old, "cert-1/key", B)
    assert blob_key(new)[0] == 2
    assert ring.open(new, "cert-1/key", A) == PEM
    assert ring.reseal(new, "cert-1/key", A) == new  # already current: unchanged
    with pytest.raises(SecretError):
        ring.reseal(old, "cert-9/key", A)  # the aad still has to match


def test_a_second_wrapper_keeps_a_node_sealing_after_the_first_is_revoked() -> None:
    members = Members(A, B, C, D)
    ring = ring_of(members, A, B, C)
    ring.rewrap_for(C, D.public_key, NOW)
    ring.rewrap_for(A, D.public_key, NOW)  # D already has it: nothing new
    gen = ring.generations()[0]
    d_wrap = next(w for w in ring.wraps.values() if w.recipient == D.public_key)
    assert d_wrap.wrapped_by == C.public_key
    # Another member's wrap of the same key for D, written concurrently, is kept too.
    again = WrappedKey.create(
        A,
        ring.key(A, gen),
        D.public_key,
        now=NOW,
        created_by=d_wrap.created_by,
        creator_signature=d_wrap.creator_signature,
    )
    ring.add([again])
    assert again.slot == d_wrap.slot
    assert len([w for w in ring.wraps.values() if w.recipient == D.public_key]) == 2
    members.revoke(C)
    ring.rotate(A, [A.public_key, B.public_key, D.public_key], NOW + 60)
    assert ring.current(D).generation == 2
