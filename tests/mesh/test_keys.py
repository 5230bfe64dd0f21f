"""mesh.keys: identities, key conversion, signatures."""

from __future__ import annotations

import nacl.public
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.keys import (
    PUBLIC_KEY_LEN,
    SEED_LEN,
    SIGNATURE_LEN,
    Identity,
    fingerprint,
    verify,
    x25519_public,
)

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.generate()

# Not valid Ed25519 points of the prime-order subgroup: the identity point, a point of
# order 4 (y = 0), and y >= p.
BAD_POINTS = [b"\x01" + bytes(31), bytes(32), b"\xff" * 32]


def test_generate_gives_distinct_32_byte_keys() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert len(a.public_key) == PUBLIC_KEY_LEN
    assert len(a.seed) == SEED_LEN
    assert a.public_key != b.public_key


def test_from_seed_round_trips() -> None:
    again = Identity.from_seed(ALICE.seed)
    assert again.public_key == ALICE.public_key
    assert again.seed == ALICE.seed


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "x" * 32])
def test_from_seed_refuses_wrong_seeds(seed: object) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(seed)  # type: ignore[arg-type]


def test_public_key_is_the_ed25519_verify_key() -> None:
    signing = nacl.signing.SigningKey(ALICE.seed)
    assert bytes(signing.verify_key) == ALICE.public_key


def test_sign_and_verify() -> None:
    sig = ALICE.sign(b"hello")
    assert len(sig) == SIGNATURE_LEN
    assert verify(ALICE.public_key, b"hello", sig)
    assert not verify(ALICE.public_key, b"hellp", sig)
    assert not verify(BOB.public_key, b"hello", sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not verify(ALICE.public_key, b"hello", flipped)


@pytest.mark.parametrize(
    ("key", "sig"),
    [
        (b"", bytes(64)),
        (bytes(31), bytes(64)),
        (bytes(32), bytes(63)),
        (bytes(32), bytes(65)),
        (b"\xff" * 32, bytes(64)),
        (bytes(32), bytes(64)),
    ],
)
def test_verify_returns_false_on_junk(key: bytes, sig: bytes) -> None:
    assert verify(key, b"m", sig) is False


def test_verify_returns_false_on_wrong_types() -> None:
    assert verify("k" * 32, b"m", bytes(64)) is False  # type: ignore[arg-type]
    assert verify(ALICE.public_key, b"m", None) is False  # type: ignore[arg-type]


@given(st.binary(max_size=40), st.binary(max_size=80), st.binary(max_size=70))
def test_verify_never_raises(key: bytes, message: bytes, sig: bytes) -> None:
    assert verify(key, message, sig) in (True, False)


def test_x25519_conversions_agree() -> None:
    # Both sides of a crypto_box must derive the same shared key.
    ab = nacl.public.Box(ALICE.x25519_private, x25519_public(BOB.public_key))
    ba = nacl.public.Box(BOB.x25519_private, x25519_public(ALICE.public_key))
    assert bytes(ab) == bytes(ba)
    assert bytes(ALICE.x25519_private.public_key) == bytes(x25519_public(ALICE.public_key))


def test_x25519_private_is_cached() -> None:
    assert ALICE.x25519_private is ALICE.x25519_private


@pytest.mark.parametrize("key", [*BAD_POINTS, b"", bytes(31), bytes(33)])
def test_x25519_public_refuses_bad_keys(key: bytes) -> None:
    with pytest.raises(ValueError, match="key"):
        x25519_public(key)


def test_x25519_public_refuses_wrong_type() -> None:
    with pytest.raises(ValueError, match="key"):
        x25519_public("a" * 32)  # type: ignore[arg-type]


@given(st.binary(min_size=0, max_size=40))
def test_x25519_public_raises_only_value_error(key: bytes) -> None:
    try:
        result = x25519_public(key)
    except ValueError:
        return
    assert isinstance(result, nacl.public.PublicKey)


def test_fingerprint_and_repr_do_not_leak_the_seed() -> None:
    assert fingerprint(ALICE.public_key) == ALICE.public_key.hex()[:12]
    assert ALICE.fingerprint == fingerprint(ALICE.public_key)
    assert repr(ALICE) == f"Identity({ALICE.fingerprint})"
    assert ALICE.seed.hex()[:8] not in repr(ALICE)
