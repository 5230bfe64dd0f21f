"""Node identity: a long-term Ed25519 key pair, and the key helpers the security layer uses.

A node's id *is* its 32-byte Ed25519 public key. The same key pair serves two purposes:

- signing (stream handshakes; admission records outside mesh/), with Ed25519 itself;
- Diffie-Hellman for datagrams (crypto_box), with the key pair converted to X25519
  (libsodium's ``crypto_sign_ed25519_*_to_curve25519``).

Nothing here raises on hostile key bytes except where documented (:func:`x25519_public`
raises :class:`ValueError`, which callers turn into a drop reason); :func:`verify` never
raises.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.public
import nacl.signing

PUBLIC_KEY_LEN = 32
"""Length of an Ed25519 public key (a node id)."""

SEED_LEN = 32
"""Length of the secret seed an :class:`Identity` is stored as."""

SIGNATURE_LEN = 64
"""Length of a detached Ed25519 signature."""

FINGERPRINT_LEN = 12
"""Hex characters in a :func:`fingerprint`."""

# Everything pynacl raises for bad key material: its own CryptoError family (which
# includes its RuntimeError/ValueError/TypeError subclasses) and the builtin ones.
_KEY_ERRORS = (nacl.exceptions.CryptoError, ValueError, TypeError, RuntimeError)


def fingerprint(public_key: bytes) -> str:
    """Short human form of a public key (first 12 hex characters) for logs and UIs.

    Not unique enough to identify a key securely: compare full keys for that.
    """
    return public_key.hex()[:FINGERPRINT_LEN]


class Identity:
    """A node's long-term Ed25519 key pair.

    ``repr`` shows only the fingerprint: the seed never ends up in logs by accident.
    """

    __slots__ = ("_public", "_signing", "_x25519")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing = signing_key
        self._public = bytes(signing_key.verify_key)
        self._x25519: nacl.public.PrivateKey | None = None

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity stored as ``seed`` (32 bytes; :class:`ValueError` otherwise)."""
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_LEN:
            raise ValueError(f"an identity seed is {SEED_LEN} bytes")
        return cls(nacl.signing.SigningKey(bytes(seed)))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed, for the caller to store (mode 0600)."""
        return bytes(self._signing)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key: this node's id."""
        return self._public

    @property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of :attr:`public_key`."""
        return fingerprint(self._public)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte detached Ed25519 signature of ``message``."""
        return self._signing.sign(message).signature

    @property
    def x25519_private(self) -> nacl.public.PrivateKey:
        """The key pair converted to X25519 for crypto_box (computed once, then cached)."""
        if self._x25519 is None:
            self._x25519 = self._signing.to_curve25519_private_key()
        return self._x25519

    def __repr__(self) -> str:
        return f"Identity({self.fingerprint})"


def x25519_public(ed25519_key: bytes) -> nacl.public.PublicKey:
    """Convert a peer's Ed25519 public key to X25519 for crypto_box.

    Raises :class:`ValueError` if the key is not 32 bytes or is not a valid point of the
    prime-order subgroup (libsodium also rejects small-order points here).
    """
    if not isinstance(ed25519_key, bytes | bytearray) or len(ed25519_key) != PUBLIC_KEY_LEN:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LEN} bytes")
    try:
        return nacl.signing.VerifyKey(bytes(ed25519_key)).to_curve25519_public_key()
    except _KEY_ERRORS as exc:
        raise ValueError("not a valid Ed25519 public key") from exc


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``message``. Never raises."""
    if (
        not isinstance(public_key, bytes | bytearray)
        or len(public_key) != PUBLIC_KEY_LEN
        or not isinstance(signature, bytes | bytearray)
        or len(signature) != SIGNATURE_LEN
    ):
        return False
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(message, bytes(signature))
    except _KEY_ERRORS:
        return False
    return True
