"""Workspace secrets: private keys sealed with a per-workspace data key, wrapped per node.

Nothing here touches pycrdt or the disk: records are plain data (``to_dict()`` gives
``str``/``int``/``bytes`` values) that the workspace document stores. Only ciphertext ever
leaves this module - :class:`DataKey` has no serialised form - so secrets never sit on
disk (nor travel) in clear.

Data keys
    A :class:`DataKey` is 32 random bytes for one workspace and one *generation*, named by
    a 16-byte key id: ``blake2b(msgpack([workspace id, generation]), key=data key)``, a MAC
    that reveals nothing of the key but binds it to its workspace and generation (a wrap
    cannot pass one key off as another).

Sealed blobs
    :meth:`DataKey.seal` uses XChaCha20-Poly1305 (random 24-byte nonce). A blob is
    ``version(1) || generation(8, big-endian) || key id(16) || nonce(24) || ciphertext``,
    so a reader knows which generation to unwrap. The associated data binds the workspace
    id, the generation, the key id and the caller's ``aad`` (the secret's id, e.g. the
    certificate's ``key_ref``): a blob copied to another field or another workspace, or
    altered in any byte, does not open (:class:`SecretError`).

Wraps
    A :class:`WrappedKey` is one generation's key sealed (``crypto_box_seal``, i.e. an
    anonymous SealedBox) to one node's X25519 key, converted from its Ed25519 node id.
    SealedBox says nothing of who made it, so each wrap carries two signatures:

    - the *creator's* over ``(workspace, generation, key id)`` - made once by the node
      that generated the key, copied unchanged into every rewrap;
    - the *wrapper's* over the whole wrap (the node that sealed this copy).

    :class:`Keyring` seals new secrets only under a generation whose creator is a member
    and whose wrap for this node was made by a member (``is_member``). Without that, a
    member about to be revoked could plant a high-numbered generation it knows, wrapped
    for everyone, and read every secret sealed after its revocation. *Opening* needs no
    such check: the key id proves which key a wrap holds, and whoever wrote a blob chose
    its key anyway.

Rotation (a revoked node learns nothing new)
    When a node that holds the key stops being allowed to (revoked from the mesh, or no
    longer serving the workspace), any member calls :meth:`Keyring.rotate`: a fresh random
    key, generation ``newest + 1``, wrapped for each remaining holder. The old node has
    no wrap of it, so nothing sealed afterwards opens for it. :meth:`Keyring.current`
    fails closed in between: it refuses to hand out a key that a non-member holds
    (:meth:`Keyring.needs_rotation` says why).

    Rotation protects what comes *after*. Secrets sealed under older generations were
    readable by the revoked node and must be treated as compromised: :meth:`Keyring.reseal`
    moves a blob to the current key (so later holders need no old generations), but only
    re-issuing the certificate (a new private key) actually restores secrecy. Old
    generations stay in the keyring so existing blobs keep opening.

Partial replication
    Wraps and blobs belong in the *workspace* document, which only the nodes serving that
    workspace replicate; ``is_member`` should answer "a mesh member (see
    :class:`crdt.trust.TrustVerifier`) that serves this workspace". A node newly assigned
    gets the keys by :meth:`Keyring.rewrap_for`, run by a node that holds them.

Concurrency
    Two members may rotate concurrently and both write generation ``n + 1``: the
    generations differ in key id, every reader picks the same newest one (highest
    ``(generation, key id)``) and blobs under either keep opening. A wrap that arrives
    before the admission of its recipient makes :meth:`Keyring.current` refuse until the
    admission record arrives too (fail closed, transient).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeAlias

import msgpack
import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from mesh import Identity, fingerprint

__all__ = [
    "BLOB_VERSION",
    "CREATOR_CONTEXT",
    "DATA_KEY_LEN",
    "KEY_ID_LEN",
    "SECRET_CONTEXT",
    "WRAP_CONTEXT",
    "DataKey",
    "Keyring",
    "SecretError",
    "WrappedKey",
    "blob_key",
]

DATA_KEY_LEN = 32
"""Bytes of a data key (XChaCha20-Poly1305 key)."""
KEY_ID_LEN = 16
"""Bytes of a key id."""
KEY_LEN = 32
"""Bytes of an Ed25519 public key (a node id)."""
SIGNATURE_LEN = 64
"""Bytes of an Ed25519 signature."""
NONCE_LEN = 24
"""Bytes of an XChaCha20-Poly1305 nonce."""
MAC_LEN = 16
"""Bytes of a Poly1305 tag."""
SEALED_LEN = 32 + MAC_LEN + DATA_KEY_LEN
"""Bytes of a data key sealed by ``crypto_box_seal`` (ephemeral key, tag, key)."""
MAX_WORKSPACE_ID = 128
"""Longest workspace id, in characters."""
MAX_GENERATION = 2**53 - 1
"""Highest generation (pycrdt stores numbers as doubles: larger integers are lossy)."""

BLOB_VERSION = 1
_HEADER = struct.Struct(">BQ")
HEADER_LEN = _HEADER.size + KEY_ID_LEN + NONCE_LEN
"""Bytes before the ciphertext of a sealed blob."""

SECRET_CONTEXT = b"nxmesh-secret-v1"
CREATOR_CONTEXT = b"nxmesh-datakey-v1"
WRAP_CONTEXT = b"nxmesh-wrap-v1"
_KEY_ID_PERSON = b"nxmesh-keyid-v1"  # blake2b personalisation: at most 16 bytes

Plain: TypeAlias = str | int | bytes
"""The values of a record's ``to_dict()``."""

_NACL_ERRORS = (nacl.exceptions.CryptoError, ValueError, TypeError, RuntimeError)


class SecretError(ValueError):
    """A secret or key cannot be used; ``reason`` is one line for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- helpers ---------------------------------------------------------------------------


def _pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _signing_bytes(context: bytes, body: Mapping[str, Plain]) -> bytes:
    return context + b"\x00" + _pack({k: body[k] for k in sorted(body)})


def _verify(key: bytes, message: bytes, signature: bytes) -> bool:
    if len(key) != KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
    except _NACL_ERRORS:
        return False
    return True


def _x25519_public(node_key: bytes) -> nacl.public.PublicKey:
    if len(node_key) != KEY_LEN:
        raise SecretError(f"a node key is {KEY_LEN} bytes")
    try:
        return nacl.signing.VerifyKey(node_key).to_curve25519_public_key()
    except _NACL_ERRORS as exc:
        raise SecretError(f"{fingerprint(node_key)} is not a valid node key") from exc


def _aad_bytes(aad: str | bytes) -> bytes:
    if isinstance(aad, str):
        return aad.encode("utf-8")
    if isinstance(aad, bytes | bytearray):
        return bytes(aad)
    raise TypeError("aad must be str or bytes")


def _check_workspace(workspace_id: str) -> str:
    if not isinstance(workspace_id, str) or not 0 < len(workspace_id) <= MAX_WORKSPACE_ID:
        raise SecretError(f"a workspace id is 1-{MAX_WORKSPACE_ID} characters")
    return workspace_id


def _key_id(workspace_id: str, generation: int, key: bytes) -> bytes:
    return hashlib.blake2b(
        _pack([workspace_id, generation]),
        key=key,
        digest_size=KEY_ID_LEN,
        person=_KEY_ID_PERSON,
    ).digest()


def blob_key(blob: bytes) -> tuple[int, bytes]:
    """``(generation, key id)`` a sealed blob needs; :class:`SecretError` if not a blob."""
    if not isinstance(blob, bytes | bytearray) or len(blob) < HEADER_LEN + MAC_LEN:
        raise SecretError("not a sealed secret (too short)")
    version, generation = _HEADER.unpack_from(blob)
    if version != BLOB_VERSION:
        raise SecretError(f"unsupported sealed secret version {version}")
    if generation > MAX_GENERATION:
        raise SecretError("not a sealed secret (bad generation)")
    return generation, bytes(blob[_HEADER.size : _HEADER.size + KEY_ID_LEN])


# --- data keys -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataKey:
    """One generation of a workspace's data key. Never serialised: only wrapped.

    ``repr`` shows no key material.
    """

    workspace_id: str
    generation: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_workspace(self.workspace_id)
        if isinstance(self.generation, bool) or not 0 < self.generation <= MAX_GENERATION:
            raise SecretError(f"a generation is 1-{MAX_GENERATION}")
        if not isinstance(self.key, bytes) or len(self.key) != DATA_KEY_LEN:
            raise SecretError(f"a data key is {DATA_KEY_LEN} bytes")

    @classmethod
    def generate(cls, workspace_id: str, generation: int) -> DataKey:
        """A fresh random key."""
        return cls(workspace_id, generation, os.urandom(DATA_KEY_LEN))

    @property
    def key_id(self) -> bytes:
        """16-byte id: a MAC of (workspace id, generation) under the key."""
        return _key_id(self.workspace_id, self.generation, self.key)

    def _aad(self, key_id: bytes, aad: str | bytes) -> bytes:
        return (
            SECRET_CONTEXT
            + b"\x00"
            + _pack([self.workspace_id, self.generation, key_id, _aad_bytes(aad)])
        )

    def seal(self, plaintext: bytes, aad: str | bytes) -> bytes:
        """Encrypt ``plaintext`` bound to this workspace and ``aad`` (the secret's id)."""
        key_id = self.key_id
        nonce = os.urandom(NONCE_LEN)
        header = _HEADER.pack(BLOB_VERSION, self.generation) + key_id + nonce
        ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            bytes(plaintext), self._aad(key_id, aad), nonce, self.key
        )
        return header + ciphertext

    def open(self, blob: bytes, aad: str | bytes) -> bytes:
        """Decrypt a blob :meth:`seal` made with this key and the same ``aad``."""
        generation, key_id = blob_key(blob)
        if generation != self.generation or not hmac.compare_digest(key_id, self.key_id):
            raise SecretError(
                f"sealed under generation {generation} key {key_id.hex()[:12]}, "
                f"not this key (generation {self.generation})"
            )
        nonce = bytes(blob[_HEADER.size + KEY_ID_LEN : HEADER_LEN])
        try:
            return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                bytes(blob[HEADER_LEN:]), self._aad(key_id, aad), nonce, self.key
            )
        except _NACL_ERRORS as exc:
            raise SecretError(
                "sealed secret does not open: tampered, or moved from another secret id "
                "or workspace"
            ) from exc


# --- wraps -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed to one node (``recipient``), signed by its creator and wrapper."""

    kind: ClassVar[Literal["wrapped_key"]] = "wrapped_key"

    workspace_id: str
    generation: int
    key_id: bytes
    recipient: bytes
    sealed: bytes = field(repr=False)
    created_by: bytes
    creator_signature: bytes = field(repr=False)
    wrapped_by: bytes
    issued_at: int
    signature: bytes = field(repr=False)

    @staticmethod
    def creator_bytes(workspace_id: str, generation: int, key_id: bytes, creator: bytes) -> bytes:
        """What the creator of a generation signs."""
        return _signing_bytes(
            CREATOR_CONTEXT,
            {
                "workspace_id": workspace_id,
                "generation": generation,
                "key_id": key_id,
                "created_by": creator,
            },
        )

    @classmethod
    def create(
        cls,
        wrapper: Identity,
        key: DataKey,
        recipient: bytes,
        *,
        now: int,
        created_by: bytes | None = None,
        creator_signature: bytes | None = None,
    ) -> WrappedKey:
        """Wrap ``key`` for ``recipient`` (its Ed25519 node id), signed by ``wrapper``.

        Without ``created_by`` the wrapper is the key's creator and signs that too; a
        rewrap passes on the creator's key and signature from an existing wrap.
        """
        key_id = key.key_id
        if created_by is None:
            created_by = wrapper.public_key
            creator_signature = wrapper.sign(
                cls.creator_bytes(key.workspace_id, key.generation, key_id, created_by)
            )
        elif creator_signature is None:
            raise ValueError("a rewrap needs the creator's signature")
        sealed = nacl.public.SealedBox(_x25519_public(recipient)).encrypt(key.key)
        unsigned = cls(
            key.workspace_id,
            key.generation,
            key_id,
            bytes(recipient),
            bytes(sealed),
            created_by,
            creator_signature,
            wrapper.public_key,
            now,
            b"",
        )
        return replace(unsigned, signature=wrapper.sign(unsigned.signing_bytes()))

    def body(self) -> dict[str, Plain]:
        """The fields the wrapper signs (all but its signature)."""
        return {
            "workspace_id": self.workspace_id,
            "generation": self.generation,
            "key_id": self.key_id,
            "recipient": self.recipient,
            "sealed": self.sealed,
            "created_by": self.created_by,
            "creator_signature": self.creator_signature,
            "wrapped_by": self.wrapped_by,
            "issued_at": self.issued_at,
        }

    def signing_bytes(self) -> bytes:
        return _signing_bytes(WRAP_CONTEXT, self.body())

    def is_signed(self) -> bool:
        """Both signatures verify (creator's over the generation, wrapper's over the wrap)."""
        return _verify(
            self.created_by,
            self.creator_bytes(self.workspace_id, self.generation, self.key_id, self.created_by),
            self.creator_signature,
        ) and _verify(self.wrapped_by, self.signing_bytes(), self.signature)

    @property
    def slot(self) -> str:
        """Stable storage key: one wrap per (generation, key id, recipient)."""
        return f"{self.generation}:{self.key_id.hex()}:{self.recipient.hex()}"

    def unwrap(self, identity: Identity) -> DataKey:
        """Open the wrap with the recipient's identity; checks the key matches its id."""
        if identity.public_key != self.recipient:
            raise SecretError(
                f"this wrap is for {fingerprint(self.recipient)}, not {identity.fingerprint}"
            )
        try:
            raw = nacl.public.SealedBox(identity.x25519_private).decrypt(self.sealed)
        except _NACL_ERRORS as exc:
            raise SecretError("wrapped key does not open: damaged or not for this node") from exc
        try:
            key = DataKey(self.workspace_id, self.generation, raw)
        except SecretError as exc:
            raise SecretError(f"wrapped key is malformed: {exc.reason}") from exc
        if not hmac.compare_digest(key.key_id, self.key_id):
            raise SecretError("wrapped key does not match its key id (forged wrap)")
        return key

    def to_dict(self) -> dict[str, Plain]:
        return {"kind": self.kind, **self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WrappedKey:
        """Parse a stored wrap; :class:`SecretError` names the first bad field."""
        if data.get("kind") != cls.kind:
            raise SecretError("not a wrapped_key record")

        def get(name: str) -> Any:
            if name not in data:
                raise SecretError(f"missing field {name!r}")
            return data[name]

        def raw(name: str, length: int) -> bytes:
            value = get(name)
            if not isinstance(value, bytes) or len(value) != length:
                raise SecretError(f"field {name!r} must be {length} bytes")
            return value

        def number(name: str, low: int) -> int:
            value = get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SecretError(f"field {name!r} must be an integer")
            if not low <= value <= MAX_GENERATION:
                raise SecretError(f"field {name!r} is out of range")
            return value

        workspace_id = get("workspace_id")
        if not isinstance(workspace_id, str) or not 0 < len(workspace_id) <= MAX_WORKSPACE_ID:
            raise SecretError(f"field 'workspace_id' must be 1-{MAX_WORKSPACE_ID} characters")
        return cls(
            workspace_id=workspace_id,
            generation=number("generation", 1),
            key_id=raw("key_id", KEY_ID_LEN),
            recipient=raw("recipient", KEY_LEN),
            sealed=raw("sealed", SEALED_LEN),
            created_by=raw("created_by", KEY_LEN),
            creator_signature=raw("creator_signature", SIGNATURE_LEN),
            wrapped_by=raw("wrapped_by", KEY_LEN),
            issued_at=number("issued_at", 0),
            signature=raw("signature", SIGNATURE_LEN),
        )


# --- the keyring -----------------------------------------------------------------------

Generation: TypeAlias = tuple[int, bytes]
"""``(generation, key id)``; ordered, the highest is the newest."""

Problem: TypeAlias = tuple[str, str]
"""``(slot or index, one-line reason)``."""


class Keyring:
    """Every wrapped generation of one workspace's data key, and the rules to use them.

    Feed it the workspace's whole collection of wraps (:meth:`update`, any order, dicts
    or records); malformed, forged or other-workspace wraps go to :attr:`problems` and
    are never used. ``is_member(node key)`` says who may hold this workspace's key now
    (a mesh member serving the workspace); it decides which generations may seal.
    """

    def __init__(
        self,
        workspace_id: str,
        wraps: Iterable[WrappedKey | Mapping[str, Any]] = (),
        *,
        is_member: Callable[[bytes], bool],
    ) -> None:
        self.workspace_id = _check_workspace(workspace_id)
        self.is_member = is_member
        self.wraps: dict[tuple[str, bytes], WrappedKey] = {}
        """Valid wraps by (:attr:`WrappedKey.slot`, wrapper): two members' wraps of one key
        for one node both stay (trust in either may later be withdrawn)."""
        self.problems: list[Problem] = []
        self._keys: dict[tuple[bytes, int, bytes], DataKey] = {}
        self.update(wraps)

    # -- the collection --

    def update(self, wraps: Iterable[WrappedKey | Mapping[str, Any]]) -> None:
        """Replace the collection with ``wraps`` (the whole current collection)."""
        self.wraps = {}
        self.problems = []
        self.add(wraps)

    def add(self, wraps: Iterable[WrappedKey | Mapping[str, Any]]) -> None:
        """Add ``wraps`` to the collection (e.g. those this node just made)."""
        for index, item in enumerate(wraps):
            if isinstance(item, WrappedKey):
                wrap = item
            else:
                try:
                    wrap = WrappedKey.from_dict(item)
                except SecretError as exc:
                    self.problems.append((f"#{index}", f"malformed wrapped key: {exc.reason}"))
                    continue
            if wrap.workspace_id != self.workspace_id:
                self.problems.append((wrap.slot, "wrapped key for another workspace"))
                continue
            if not wrap.is_signed():
                self.problems.append(
                    (
                        wrap.slot,
                        f"wrapped key: forged or damaged signature "
                        f"(claims wrapper {fingerprint(wrap.wrapped_by)})",
                    )
                )
                continue
            self.wraps.setdefault((wrap.slot, wrap.wrapped_by), wrap)

    def generations(self) -> list[Generation]:
        """Every generation with at least one valid wrap, oldest first."""
        return sorted({(w.generation, w.key_id) for w in self.wraps.values()})

    def holders(self, generation: Generation) -> set[bytes]:
        """Nodes that have a wrap of ``generation``."""
        return {w.recipient for w in self.wraps.values() if (w.generation, w.key_id) == generation}

    def _trusted(self, wrap: WrappedKey) -> bool:
        return self.is_member(wrap.created_by) and self.is_member(wrap.wrapped_by)

    def newest(self) -> Generation | None:
        """The generation new secrets are sealed under: the highest one created by a member
        and wrapped by a member for someone (``None`` before the first :meth:`rotate`)."""
        trusted = [(w.generation, w.key_id) for w in self.wraps.values() if self._trusted(w)]
        return max(trusted, default=None)

    def needs_rotation(self) -> str | None:
        """Why the workspace needs :meth:`rotate` before sealing anything new, or ``None``."""
        newest = self.newest()
        if newest is None:
            return "the workspace has no data key yet"
        outsiders = sorted(k for k in self.holders(newest) if not self.is_member(k))
        if outsiders:
            names = ", ".join(fingerprint(k) for k in outsiders)
            return f"the current data key is held by non-members ({names})"
        return None

    def lacking(self, members: Iterable[bytes]) -> set[bytes]:
        """Those of ``members`` without a wrap of the newest generation (to :meth:`rewrap_for`)."""
        newest = self.newest()
        holders = set() if newest is None else self.holders(newest)
        return {bytes(m) for m in members} - holders

    # -- using keys --

    def _find(self, identity: Identity, generation: Generation, *, trusted: bool) -> WrappedKey:
        candidates = [
            w
            for w in self.wraps.values()
            if w.recipient == identity.public_key
            and (w.generation, w.key_id) == generation
            and (not trusted or self._trusted(w))
        ]
        if not candidates:
            raise SecretError(
                f"no key for this node ({identity.fingerprint}) in workspace "
                f"{self.workspace_id!r}: generation {generation[0]} "
                f"key {generation[1].hex()[:12]} is not wrapped for it"
                + (" by a member" if trusted else "")
            )
        return candidates[0]

    def _unwrap(self, wrap: WrappedKey, identity: Identity) -> DataKey:
        cache_key = (identity.public_key, wrap.generation, wrap.key_id)
        key = self._keys.get(cache_key)
        if key is None:
            key = wrap.unwrap(identity)
            self._keys[cache_key] = key
        return key

    def key(self, identity: Identity, generation: Generation) -> DataKey:
        """This node's copy of ``generation`` (to open blobs sealed under it)."""
        return self._unwrap(self._find(identity, generation, trusted=False), identity)

    def current(self, identity: Identity) -> DataKey:
        """The key to seal new secrets with: the :meth:`newest` generation, as wrapped for
        this node by a member. Refuses (fails closed) when the workspace has no key, this
        node has no trusted wrap of the newest one yet, or a non-member holds it."""
        reason = self.needs_rotation()
        if reason is not None:
            raise SecretError(f"workspace {self.workspace_id!r}: {reason}; rotate the key")
        newest = self.newest()
        assert newest is not None  # needs_rotation() checked it
        return self._unwrap(self._find(identity, newest, trusted=True), identity)

    def seal(self, plaintext: bytes, aad: str | bytes, identity: Identity) -> bytes:
        """Seal a new secret under :meth:`current`."""
        return self.current(identity).seal(plaintext, aad)

    def open(self, blob: bytes, aad: str | bytes, identity: Identity) -> bytes:
        """Open a blob with the generation it names (any generation this node holds)."""
        return self.key(identity, blob_key(blob)).open(blob, aad)

    def reseal(self, blob: bytes, aad: str | bytes, identity: Identity) -> bytes:
        """``blob`` re-sealed under :meth:`current` (returned unchanged if it already is).

        Use after :meth:`rotate` so nobody needs old generations any more. It does not make
        an old secret secret again: the revoked node may have read it (re-issue the
        certificate for that).
        """
        current = self.current(identity)
        if blob_key(blob) == (current.generation, current.key_id):
            current.open(blob, aad)  # still refuse a tampered blob
            return bytes(blob)
        return current.seal(self.open(blob, aad, identity), aad)

    # -- changing who holds keys --

    def _check_recipient(self, node_key: bytes) -> bytes:
        node_key = bytes(node_key)
        _x25519_public(node_key)
        if not self.is_member(node_key):
            raise SecretError(
                f"{fingerprint(node_key)} may not hold workspace {self.workspace_id!r} keys "
                "(not a member serving it)"
            )
        return node_key

    def rotate(self, identity: Identity, members: Iterable[bytes], now: int) -> list[WrappedKey]:
        """A fresh key, generation ``newest + 1``, wrapped for each of ``members``.

        The new wraps are added to this keyring and returned for the caller to store. Any
        member may rotate, holding the old key or not. Every one of ``members`` must pass
        ``is_member`` (:class:`SecretError` otherwise); include this node to keep sealing.
        """
        recipients = sorted({self._check_recipient(m) for m in members})
        if not recipients:
            raise SecretError("a rotation needs at least one member to wrap the key for")
        if not self.is_member(identity.public_key):
            raise SecretError(f"{identity.fingerprint} is not a member: it may not rotate")
        newest = self.newest()
        generation = 1 if newest is None else newest[0] + 1
        if generation > MAX_GENERATION:
            raise SecretError("no generation numbers left")
        key = DataKey.generate(self.workspace_id, generation)
        first = WrappedKey.create(identity, key, recipients[0], now=now)
        wraps = [first] + [
            WrappedKey.create(
                identity,
                key,
                recipient,
                now=now,
                created_by=first.created_by,
                creator_signature=first.creator_signature,
            )
            for recipient in recipients[1:]
        ]
        self._keys[(identity.public_key, generation, key.key_id)] = key
        self.add(wraps)
        return wraps

    def rewrap_for(self, identity: Identity, node_key: bytes, now: int) -> list[WrappedKey]:
        """Wrap for ``node_key`` (newly admitted or assigned) every generation this node
        holds and it lacks, so it can open existing secrets and seal new ones.

        Added to this keyring and returned for the caller to store. :class:`SecretError`
        if ``node_key`` is not a member, or this node does not hold the newest generation
        (another holder must do it).
        """
        node_key = self._check_recipient(node_key)
        newest = self.newest()
        if newest is None:
            raise SecretError(f"workspace {self.workspace_id!r} has no data key yet: rotate")
        mine = {
            (w.generation, w.key_id): w
            for w in self.wraps.values()
            if w.recipient == identity.public_key
        }
        if newest not in mine:
            raise SecretError(
                f"this node ({identity.fingerprint}) does not hold the newest key of "
                f"workspace {self.workspace_id!r}; another holder must rewrap"
            )
        theirs = {(w.generation, w.key_id) for w in self.wraps.values() if w.recipient == node_key}
        wraps = []
        for generation, wrap in sorted(mine.items()):
            if generation in theirs:
                continue
            key = self._unwrap(wrap, identity)
            wraps.append(
                WrappedKey.create(
                    identity,
                    key,
                    node_key,
                    now=now,
                    created_by=wrap.created_by,
                    creator_signature=wrap.creator_signature,
                )
            )
        self.add(wraps)
        return wraps
