"""crdt/trust.py: signed admission chains, revocations, invites and join tokens."""

from __future__ import annotations

import base64
import string
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.trust import (
    Admission,
    Genesis,
    Invite,
    InviteError,
    Record,
    RecordError,
    Revocation,
    Token,
    TokenError,
    TrustVerifier,
    check_invite,
    pack_record,
    parse_record,
    redeemed,
)
from mesh import Identity

NOW = 1_700_000_000

# Fixed identities: hypothesis examples reuse them (key generation is the slow part).
ROOT = Identity.from_seed(b"\x01" * 32)
A = Identity.from_seed(b"\x02" * 32)
B = Identity.from_seed(b"\x03" * 32)
C = Identity.from_seed(b"\x04" * 32)
D = Identity.from_seed(b"\x05" * 32)
MESH = b"M" * 16
OTHER_MESH = b"O" * 16
GENESIS = Genesis.create(ROOT, "root", NOW, mesh_id=MESH)


def admit(by: Identity, who: Identity, t: int = NOW, mesh: bytes = MESH) -> Admission:
    return Admission.create(by, who.public_key, f"n-{who.fingerprint}", mesh_id=mesh, now=t)


def revoke(by: Identity, who: Identity, t: int = NOW + 100) -> Revocation:
    return Revocation.create(by, who.public_key, mesh_id=MESH, now=t, reason="test")


def chain() -> list[Record]:
    """root admits A, A admits B, B admits C."""
    return [admit(ROOT, A, NOW + 1), admit(A, B, NOW + 2), admit(B, C, NOW + 3)]


def reasons(v: TrustVerifier) -> str:
    return " | ".join(reason for _, reason in v.problems)


# --- admissions -------------------------------------------------------------------------


def test_chain_through_two_admitters() -> None:
    v = TrustVerifier(GENESIS, chain())
    assert v.members == {ROOT.public_key, A.public_key, B.public_key, C.public_key}
    assert v.is_member(C.public_key)
    assert not v.is_member(D.public_key)
    assert v.problems == []
    assert v.names[C.public_key] == f"n-{C.fingerprint}"
    assert v.names[ROOT.public_key] == "root"


def test_forged_signature_is_rejected_and_reported() -> None:
    good = admit(A, D)
    # D claims A admitted it, signing with its own key.
    forged = replace(good, signature=D.sign(good.signing_bytes()))
    v = TrustVerifier(GENESIS, [*chain(), forged])
    assert not v.is_member(D.public_key)
    assert [rid for rid, _ in v.problems] == [forged.record_id]
    assert "forged" in reasons(v)
    # Tampering with a signed field breaks the signature as well.
    tampered = replace(admit(A, D), node_key=C.public_key)
    v = TrustVerifier(GENESIS, [admit(ROOT, A), tampered])
    assert not v.is_member(C.public_key)
    assert "forged" in reasons(v)


def test_signature_of_one_kind_cannot_pass_as_another() -> None:
    rev = revoke(A, B)
    # Same key fields, reusing the revocation's signature on an admission.
    fake = Admission(B.public_key, "", A.public_key, rev.issued_at, MESH, None, rev.signature)
    v = TrustVerifier(GENESIS, [admit(ROOT, A), fake])
    assert not v.is_member(B.public_key)


def test_wrong_mesh_is_rejected() -> None:
    v = TrustVerifier(GENESIS, [admit(ROOT, A, mesh=OTHER_MESH)])
    assert not v.is_member(A.public_key)
    assert "another mesh" in reasons(v)
    # Re-labelling the mesh id breaks the signature: it is signed.
    relabelled = replace(admit(ROOT, A, mesh=OTHER_MESH), mesh_id=MESH)
    v = TrustVerifier(GENESIS, [relabelled])
    assert not v.is_member(A.public_key)
    assert "forged" in reasons(v)


def test_admission_by_a_non_member_is_rejected() -> None:
    v = TrustVerifier(GENESIS, [admit(D, A)])
    assert not v.is_member(A.public_key)
    assert "not chained to the genesis" in reasons(v)


def test_cycle_without_genesis_is_rejected() -> None:
    v = TrustVerifier(GENESIS, [admit(A, B), admit(B, A)])
    assert v.members == {ROOT.public_key}
    assert len(v.problems) == 2


def test_different_genesis_is_ignored() -> None:
    other = Genesis.create(D, "impostor", NOW, mesh_id=MESH)
    v = TrustVerifier(GENESIS, [other, GENESIS, admit(D, A)])
    assert not v.is_member(A.public_key)
    assert not v.is_member(D.public_key)
    assert "different genesis" in reasons(v)


def test_forged_genesis_refused() -> None:
    with pytest.raises(ValueError, match="self-signed"):
        TrustVerifier(replace(GENESIS, key=A.public_key))


def test_malformed_dicts_are_reported_not_raised() -> None:
    good = admit(ROOT, A).to_dict()
    v = TrustVerifier(
        GENESIS, [good, {"kind": "admission"}, {"kind": "nope"}, {**good, "node_key": b"x"}]
    )
    assert v.is_member(A.public_key)
    assert len(v.problems) == 3
    assert all("malformed" in r for _, r in v.problems)


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(9)))
def test_order_does_not_matter(order: list[int]) -> None:
    records: list[Record] = [
        *chain(),
        admit(ROOT, D, NOW + 1),
        revoke(D, B, NOW + 50),  # B revoked; C (admitted by B at +3) stays
        admit(B, D, NOW + 60),  # after B's revocation: refused
        admit(C, A, NOW + 70),  # duplicate admission of A: fine
        admit(A, B, NOW + 80),  # re-admission of revoked B: refused
        admit(Identity.from_seed(b"\x09" * 32), A),  # non-member admitter
    ]
    shuffled = [records[i] for i in order]
    v = TrustVerifier(GENESIS, shuffled)
    assert v.members == {ROOT.public_key, A.public_key, C.public_key, D.public_key}
    assert sorted(v.problems) == sorted(TrustVerifier(GENESIS, records).problems)


# --- revocations ------------------------------------------------------------------------


def test_revocation_removes_member_and_readmission_is_refused() -> None:
    records: list[Record] = [*chain(), revoke(A, B, NOW + 10)]
    v = TrustVerifier(GENESIS, records)
    assert not v.is_member(B.public_key)
    assert v.revoked == {B.public_key}
    # No cascade: C, admitted by B before the revocation, stays.
    assert v.is_member(C.public_key)
    # Any member re-admitting B later is refused, and said so.
    v.update([*records, admit(ROOT, B, NOW + 20)])
    assert not v.is_member(B.public_key)
    assert "revoked and stays revoked" in reasons(v)
    # ... even with a back-dated admission by another member: revocation is forever.
    v.update([*records, admit(ROOT, B, NOW - 1000)])
    assert not v.is_member(B.public_key)


def test_admissions_signed_after_the_admitters_revocation_are_refused() -> None:
    records: list[Record] = [*chain(), revoke(ROOT, B, NOW + 10), admit(B, D, NOW + 11)]
    v = TrustVerifier(GENESIS, records)
    assert not v.is_member(D.public_key)
    assert "after the admitter's revocation" in reasons(v)


def test_revocation_by_a_non_member_is_ignored() -> None:
    v = TrustVerifier(GENESIS, [*chain(), revoke(D, A)])
    assert v.is_member(A.public_key)
    assert "never admitted" in reasons(v)


def test_genesis_can_be_revoked_without_cascade() -> None:
    v = TrustVerifier(GENESIS, [*chain(), revoke(A, ROOT, NOW + 10)])
    assert not v.is_member(ROOT.public_key)
    assert v.members == {A.public_key, B.public_key, C.public_key}


def test_mutual_revocation_removes_both() -> None:
    v = TrustVerifier(GENESIS, [*chain(), revoke(A, B, NOW + 10), revoke(B, A, NOW + 11)])
    assert v.members == {ROOT.public_key, C.public_key}


# --- records as plain data ------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        GENESIS,
        admit(ROOT, A),
        Admission.create(ROOT, A.public_key, "x", mesh_id=MESH, now=NOW, invite_id=b"i" * 16),
        revoke(ROOT, A),
        Invite.create(ROOT, mesh_id=MESH, now=NOW, ttl=60, uses=3)[0],
    ],
)
def test_record_round_trip(record: Record) -> None:
    data = record.to_dict()
    assert all(isinstance(v, str | int | bytes | None) for v in data.values())
    assert parse_record(data) == record
    assert parse_record(pack_record(record)) == record
    assert type(record).from_dict(data).is_signed()


def test_parse_record_rejects_bad_input() -> None:
    with pytest.raises(RecordError):
        parse_record(b"\xc1")
    with pytest.raises(RecordError):
        parse_record(msgpack.packb([1, 2]))
    with pytest.raises(RecordError, match="issued_at"):
        parse_record({**admit(ROOT, A).to_dict(), "issued_at": True})


# --- invites --------------------------------------------------------------------------


def _invite(uses: int = 2) -> tuple[Invite, bytes]:
    return Invite.create(A, mesh_id=MESH, now=NOW, ttl=3600, uses=uses)


def _refusal(invite: Invite | None, secret: bytes, now: int = NOW + 1, mesh: bytes = MESH) -> str:
    with pytest.raises(InviteError) as info:
        check_invite(invite, secret, now, mesh_id=mesh)
    assert "\n" not in info.value.reason
    return info.value.reason


def test_invite_accepts_then_refuses_with_one_line_reasons() -> None:
    invite, secret = _invite(uses=2)
    check_invite(invite, secret, NOW + 1, mesh_id=MESH)
    assert "unknown invite" in _refusal(None, secret)
    assert "expired" in _refusal(invite, secret, now=NOW + 3600)
    assert "wrong invite secret" in _refusal(invite, b"\x00" * 32)
    assert "another mesh" in _refusal(invite, secret, mesh=OTHER_MESH)
    once = redeemed(invite)
    assert once.uses_left == 1
    check_invite(once, secret, NOW + 1, mesh_id=MESH)
    twice = redeemed(once)
    assert "used up" in _refusal(twice, secret)
    with pytest.raises(InviteError, match="used up"):
        redeemed(twice)
    # uses_left is outside the signature; everything else is inside.
    assert twice.is_signed()
    assert "signature" in _refusal(replace(invite, expires_at=NOW + 10**6), secret)


def test_secret_is_not_stored() -> None:
    invite, secret = _invite()
    assert secret not in pack_record(invite)
    assert all(secret != v for v in invite.to_dict().values())
    assert invite.secret_hash != secret


def _token(invite: Invite, secret: bytes, **over: Any) -> Token:
    fields: dict[str, Any] = {
        "mesh_id": MESH,
        "genesis_key": ROOT.public_key,
        "seeds": ("10.0.0.1:7946", "[2001:db8::1]:7946", "seed.example:7946"),
        "invite_id": invite.id,
        "secret": secret,
    }
    fields.update(over)
    return Token(**fields)


def test_verifier_check_token() -> None:
    invite, secret = _invite()
    v = TrustVerifier(GENESIS, [admit(ROOT, A), invite])
    assert v.check_token(_token(invite, secret), NOW + 1) == invite
    for token, reason in [
        (_token(invite, secret, mesh_id=OTHER_MESH), "another mesh"),
        (_token(invite, secret, genesis_key=D.public_key), "another genesis"),
        (_token(invite, secret, invite_id=b"z" * 16), "unknown invite"),
        (_token(invite, b"\x00" * 32), "wrong invite secret"),
    ]:
        with pytest.raises(InviteError, match=reason):
            v.check_token(token, NOW + 1)
    # The creator's revocation voids its invites.
    v.update([admit(ROOT, A), invite, revoke(ROOT, A)])
    with pytest.raises(InviteError, match="no longer a member"):
        v.check_token(_token(invite, secret), NOW + 1)


def test_invite_from_non_member_is_reported() -> None:
    invite, _ = Invite.create(D, mesh_id=MESH, now=NOW, ttl=60)
    v = TrustVerifier(GENESIS, [invite])
    assert "invite created by a key not chained" in reasons(v)


# --- tokens ---------------------------------------------------------------------------


def test_token_round_trip() -> None:
    invite, secret = _invite()
    token = _token(invite, secret)
    text = token.encode()
    assert text.startswith("nxm1.")
    assert set(text[5:]) <= set(string.ascii_letters + string.digits + "-_")
    assert Token.decode(f"  {text}\n") == token
    assert token.genesis_fingerprint == ROOT.fingerprint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not an NxMesh join token"),
        ("hello", "not an NxMesh join token"),
        ("nxm2.AAAA", "unsupported join token version '2'"),
        ("nxm.AAAA", "unsupported join token version"),
        ("nxm1.@@@@", "not base64"),
        ("nxm1." + _b64(b"\xc1"), "undecodable"),
        ("nxm1." + _b64(msgpack.packb({"a": 1})), "wrong shape"),
        ("nxm1." + _b64(msgpack.packb([b"x", b"y", [], b"z", b"w"])), "bad mesh id"),
        (
            "nxm1." + _b64(msgpack.packb([b"M" * 16, b"k" * 32, [], b"i" * 16, b"s" * 32])),
            "bad seed addresses",
        ),
        ("nxm1." + "A" * 5000, "too long"),
    ],
)
def test_malformed_tokens(text: str, reason: str) -> None:
    with pytest.raises(TokenError, match=reason) as info:
        Token.decode(text)
    assert "\n" not in info.value.reason


def test_truncated_token() -> None:
    invite, secret = _invite()
    text = _token(invite, secret).encode()
    with pytest.raises(TokenError, match="damaged"):
        Token.decode(text[:-10])
