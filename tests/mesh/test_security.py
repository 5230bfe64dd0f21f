"""mesh.security: sealed (and plain) datagrams - real crypto, no mocks."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.errors import DropReason, LocalProtocolError
from mesh.keys import Identity
from mesh.security import (
    DATAGRAM_OVERHEAD,
    KIND_PLAIN,
    PLAIN_OVERHEAD,
    DatagramSeal,
    Opened,
    PlainSeal,
    Seal,
)

A = Identity.from_seed(b"A" * 32)
B = Identity.from_seed(b"B" * 32)
C = Identity.from_seed(b"C" * 32)  # never a member
MEMBERS = frozenset({A.public_key, B.public_key})


def is_member(key: bytes) -> bool:
    return key in MEMBERS


def everyone(key: bytes) -> bool:
    return True


def seal_for(
    identity: Identity,
    epoch: int = 1,
    members: Callable[[bytes], bool] = is_member,
    *,
    replay_window: int = 1024,
    max_peers: int = 4096,
    max_datagram: int = 65507,
) -> DatagramSeal:
    return DatagramSeal(
        identity,
        members,
        boot_epoch=epoch,
        replay_window=replay_window,
        max_peers=max_peers,
        max_datagram=max_datagram,
    )


def flip(data: bytes, index: int, mask: int = 1) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def test_overhead_is_90() -> None:
    assert DATAGRAM_OVERHEAD == 90
    assert seal_for(A).overhead == 90
    assert PLAIN_OVERHEAD == 50


def test_round_trip_both_ways() -> None:
    a, b = seal_for(A), seal_for(B)
    for payload in [b"", b"x", b"hello" * 200]:
        d = a.seal(B.public_key, payload)
        assert len(d) == len(payload) + DATAGRAM_OVERHEAD
        assert d[:2] == b"\x01\x01"
        assert d[2:34] == A.public_key
        assert b.open(d) == Opened(A.public_key, payload)
        assert a.open(b.seal(A.public_key, payload)) == Opened(B.public_key, payload)


def test_seq_starts_at_one_and_counts_every_datagram() -> None:
    a = seal_for(A)
    assert a.seq == 0
    a.seal(B.public_key, b"1")
    a.seal(C.public_key, b"2")
    assert a.seq == 2


def test_seal_is_a_seal_protocol() -> None:
    seals: list[Seal] = [seal_for(A), PlainSeal(A, is_member, boot_epoch=1)]
    assert [s.public_key for s in seals] == [A.public_key, A.public_key]


# --- every drop reason --------------------------------------------------------------


def test_truncated() -> None:
    d = seal_for(A).seal(B.public_key, b"")
    b = seal_for(B)
    assert b.open(b"") is DropReason.TRUNCATED
    assert b.open(d[:-1]) is DropReason.TRUNCATED
    assert b.open(d[:2]) is DropReason.TRUNCATED


def test_oversized() -> None:
    b = seal_for(B, max_datagram=200)
    assert b.max_payload == 110
    ok = seal_for(A).seal(B.public_key, b"x" * 110)
    assert b.open(ok) == Opened(A.public_key, b"x" * 110)
    big = seal_for(A).seal(B.public_key, b"x" * 111)
    assert b.open(big) is DropReason.OVERSIZED


def test_bad_version() -> None:
    d = seal_for(A).seal(B.public_key, b"p")
    assert seal_for(B).open(b"\x02" + d[1:]) is DropReason.BAD_VERSION
    assert seal_for(B).open(b"\x00" + d[1:]) is DropReason.BAD_VERSION


def test_unknown_kind_and_plain_datagrams_are_malformed() -> None:
    d = seal_for(A).seal(B.public_key, b"p")
    b = seal_for(B)
    assert b.open(d[:1] + b"\x03" + d[2:]) is DropReason.MALFORMED
    plain = PlainSeal(A, is_member, boot_epoch=1).seal(B.public_key, b"p" * 50)
    assert plain[1] == KIND_PLAIN
    assert b.open(plain) is DropReason.MALFORMED
    assert PlainSeal(B, is_member, boot_epoch=1).open(d) is DropReason.MALFORMED


def test_self() -> None:
    a = seal_for(A)
    d = a.seal(B.public_key, b"p")
    assert a.open(d) is DropReason.SELF


def test_non_member_is_dropped_before_any_crypto() -> None:
    from_c = seal_for(C, members=everyone).seal(B.public_key, b"p")
    b = seal_for(B)
    assert b.cached_peers == 0
    for _ in range(3):
        assert b.open(from_c) is DropReason.NOT_MEMBER
    assert b.cached_peers == 0  # no box was built for C
    assert b.tracked_senders == 0
    # A member's datagram does build one.
    assert isinstance(b.open(seal_for(A).seal(B.public_key, b"p")), Opened)
    assert b.cached_peers == 1


def test_invalid_sender_point_is_malformed() -> None:
    d = seal_for(A).seal(B.public_key, b"p")
    b = seal_for(B, members=everyone)
    for bad in [bytes(32), b"\x01" + bytes(31), b"\xff" * 32]:
        assert b.open(d[:2] + bad + d[34:]) is DropReason.MALFORMED
    assert b.cached_peers == 0


def test_bad_mac() -> None:
    d = seal_for(A).seal(B.public_key, b"payload")
    b = seal_for(B)
    assert b.open(flip(d, len(d) - 1)) is DropReason.BAD_MAC  # ciphertext
    assert b.open(flip(d, 40)) is DropReason.BAD_MAC  # nonce
    assert b.open(flip(d, 60)) is DropReason.BAD_MAC  # MAC
    # Sealed for someone else: C cannot open it even though it trusts A.
    assert seal_for(C, members=everyone).open(d) is DropReason.BAD_MAC
    assert b.tracked_senders == 0  # failures changed no state


def test_sender_rewritten_to_another_member_fails() -> None:
    d = seal_for(C, members=everyone).seal(B.public_key, b"p")
    assert seal_for(B).open(d[:2] + A.public_key + d[34:]) is DropReason.BAD_MAC


def test_reflection_is_refused() -> None:
    # A -> B, sent back to A claiming to come from B: same crypto_box key, but the
    # direction bit in the authenticated nonce gives it away.
    a = seal_for(A)
    d = a.seal(B.public_key, b"p")
    reflected = d[:2] + B.public_key + d[34:]
    assert a.open(reflected) is DropReason.BAD_MAC
    # Even with the direction bit flipped back the MAC fails (the nonce is authenticated).
    assert a.open(flip(reflected, 34, 0x80)) is DropReason.BAD_MAC


def test_replay_of_the_same_datagram() -> None:
    a, b = seal_for(A), seal_for(B)
    d = a.seal(B.public_key, b"p")
    assert isinstance(b.open(d), Opened)
    assert b.open(d) is DropReason.REPLAY
    assert b.open(d) is DropReason.REPLAY


def test_reordering_within_the_window_is_accepted_once() -> None:
    a, b = seal_for(A), seal_for(B)
    ds = [a.seal(B.public_key, bytes([i])) for i in range(6)]
    order = [3, 0, 1, 5, 2, 4]
    assert [b.open(ds[i]) for i in order] == [Opened(A.public_key, bytes([i])) for i in order]
    assert all(b.open(d) is DropReason.REPLAY for d in ds)


def test_older_than_the_window() -> None:
    a, b = seal_for(A), seal_for(B, replay_window=4)
    ds = [a.seal(B.public_key, b"p") for _ in range(10)]
    assert isinstance(b.open(ds[9]), Opened)
    assert b.open(ds[5]) is DropReason.REPLAY  # seq 6, top 10: outside 4
    assert isinstance(b.open(ds[6]), Opened)  # seq 7: the oldest slot


def test_new_boot_epoch_resets_and_old_epoch_is_rejected() -> None:
    b = seal_for(B)
    before = seal_for(A, epoch=1)
    old = [before.seal(B.public_key, b"old") for _ in range(5)]
    assert isinstance(b.open(old[4]), Opened)
    after = seal_for(A, epoch=2)  # A restarted: seq starts over at 1
    assert b.open(after.seal(B.public_key, b"new")) == Opened(A.public_key, b"new")
    assert b.open(old[0]) is DropReason.REPLAY
    assert b.open(old[3]) is DropReason.REPLAY
    stale = seal_for(A, epoch=1)  # a restart without a larger epoch is ignored
    assert b.open(stale.seal(B.public_key, b"x")) is DropReason.REPLAY


def test_box_cache_is_bounded() -> None:
    peers = [Identity.generate() for _ in range(5)]
    a = seal_for(A, max_peers=3)
    for p in peers:
        a.seal(p.public_key, b"p")
    assert a.cached_peers == 3
    # An evicted peer still works: its box is rebuilt.
    p0 = peers[0]
    d = a.seal(p0.public_key, b"again")
    assert seal_for(p0, members=everyone).open(d) == Opened(A.public_key, b"again")
    assert a.cached_peers == 3


def test_forget_drops_box_and_window() -> None:
    a, b = seal_for(A), seal_for(B)
    assert isinstance(b.open(a.seal(B.public_key, b"p")), Opened)
    assert (b.cached_peers, b.tracked_senders) == (1, 1)
    b.forget(A.public_key)
    b.forget(C.public_key)
    assert (b.cached_peers, b.tracked_senders) == (0, 0)


def test_seal_refuses_misuse() -> None:
    a = seal_for(A, max_datagram=100)
    with pytest.raises(LocalProtocolError):
        a.seal(B.public_key, b"x" * 11)
    with pytest.raises(LocalProtocolError):
        a.seal(A.public_key, b"x")
    with pytest.raises(ValueError, match="key"):
        a.seal(bytes(32), b"x")
    with pytest.raises(ValueError, match="key"):
        a.seal(b"short", b"x")
    with pytest.raises(ValueError, match="boot_epoch"):
        seal_for(A, epoch=-1)
    with pytest.raises(ValueError, match="boot_epoch"):
        seal_for(A, epoch=2**64)
    with pytest.raises(ValueError, match="max_datagram"):
        seal_for(A, max_datagram=90)
    with pytest.raises(ValueError, match="max_peers"):
        seal_for(A, max_peers=0)


def test_nonce_source_makes_sealing_deterministic() -> None:
    def sealer() -> DatagramSeal:
        rng = random.Random(42)
        return DatagramSeal(A, is_member, boot_epoch=1, nonce_source=rng.randbytes)

    s1, s2 = sealer(), sealer()
    assert [s1.seal(B.public_key, b"p") for _ in range(3)] == [
        s2.seal(B.public_key, b"p") for _ in range(3)
    ]
    bad = DatagramSeal(A, is_member, boot_epoch=1, nonce_source=lambda n: b"short")
    with pytest.raises(LocalProtocolError):
        bad.seal(B.public_key, b"p")


def test_accepts_bytearray_and_memoryview() -> None:
    d = seal_for(A).seal(B.public_key, b"p")
    assert isinstance(seal_for(B).open(bytearray(d)), Opened)  # type: ignore[arg-type]
    assert isinstance(seal_for(B).open(memoryview(d)), Opened)  # type: ignore[arg-type]


# --- hostile bytes ------------------------------------------------------------------

DATAGRAM = seal_for(A).seal(B.public_key, b"0123456789")


def test_every_single_bit_flip_is_dropped() -> None:
    b = seal_for(B)
    for index in range(len(DATAGRAM)):
        for bit in range(8):
            result = b.open(flip(DATAGRAM, index, 1 << bit))
            assert isinstance(result, DropReason), (index, bit)
    assert b.tracked_senders == 0
    assert isinstance(b.open(DATAGRAM), Opened)  # untouched, it still opens


@given(st.binary(max_size=300))
def test_random_bytes_never_open(data: bytes) -> None:
    assert isinstance(seal_for(B, members=everyone).open(data), DropReason)


@given(st.binary(min_size=0, max_size=200))
def test_random_bytes_behind_a_valid_header_never_open(rest: bytes) -> None:
    data = b"\x01\x01" + A.public_key + rest
    assert isinstance(seal_for(B).open(data), DropReason)


@given(st.integers(0, len(DATAGRAM) - 1))
def test_truncations_never_open(cut: int) -> None:
    expected = DropReason.TRUNCATED if cut < DATAGRAM_OVERHEAD else DropReason.BAD_MAC
    assert seal_for(B).open(DATAGRAM[:cut]) is expected


@given(
    st.lists(
        st.tuples(st.integers(0, len(DATAGRAM) - 1), st.integers(1, 255)), min_size=1, max_size=8
    )
)
def test_corruptions_never_open(flips: list[tuple[int, int]]) -> None:
    data = bytearray(DATAGRAM)
    for index, mask in flips:
        data[index] ^= mask
    result = seal_for(B, members=everyone).open(bytes(data))
    if bytes(data) != DATAGRAM:  # masks can cancel out
        assert isinstance(result, DropReason)


# --- PlainSeal (simulations) -----------------------------------------------------------


def plain(identity: Identity | bytes, epoch: int = 1) -> PlainSeal:
    return PlainSeal(identity, is_member, boot_epoch=epoch)


def test_plain_round_trip_and_overhead() -> None:
    a, b = plain(A), plain(B.public_key)
    d = a.seal(B.public_key, b"payload")
    assert len(d) == len(b"payload") + PLAIN_OVERHEAD == len(b"payload") + a.overhead
    assert b.open(d) == Opened(A.public_key, b"payload")
    assert b.open(d) is DropReason.REPLAY
    assert a.open(b.seal(A.public_key, b"")) == Opened(B.public_key, b"")


def test_plain_enforces_membership_self_length_and_epochs() -> None:
    b = plain(B)
    assert b.open(plain(C).seal(B.public_key, b"p")) is DropReason.NOT_MEMBER
    assert b.open(b.seal(A.public_key, b"p")) is DropReason.SELF
    assert b.open(b"\x01\x02" + A.public_key) is DropReason.TRUNCATED
    old = plain(A, epoch=1).seal(B.public_key, b"p")
    assert isinstance(b.open(plain(A, epoch=2).seal(B.public_key, b"p")), Opened)
    assert b.open(old) is DropReason.REPLAY
    b.forget(A.public_key)
    assert b.tracked_senders == 0
    with pytest.raises(ValueError, match="32 bytes"):
        plain(b"short")


@given(st.binary(max_size=120))
def test_plain_never_raises(data: bytes) -> None:
    assert isinstance(PlainSeal(B, everyone, boot_epoch=1).open(data), Opened | DropReason)
