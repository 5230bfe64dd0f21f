"""Membership trust: genesis, admissions, revocations, invites, join tokens, and the verifier.

Records are plain, immutable data. The mesh document stores them (as the dicts of
``to_dict()`` or as msgpack bytes); they arrive by CRDT merge in any order, possibly
forged by nobody-knows-whom, so every node recomputes the member set from the whole
collection with :class:`TrustVerifier`, whose :meth:`TrustVerifier.is_member` is the
answer mesh/ asks its delegate.

Signatures
    Every record is signed with Ed25519 over ``context || 0x00 || msgpack(body)`` where
    ``context`` names the kind and version (``b"nxmesh-admission-v1"`` ...) and ``body``
    is the record's fields *including the mesh id*, packed with sorted keys. A signature
    therefore cannot be replayed as another kind of record nor into another mesh.

Rules (the verifier computes them from the *set* of records, so arrival order never
matters; see :class:`TrustVerifier`)
    1. The genesis record is self-signed by the genesis key and fixes the mesh id. Each
       node knows its genesis (from ``nxmesh init`` or from the join token, which carries
       the full genesis key) and builds its verifier on it; a different genesis found among
       the records is reported and ignored.
    2. A record is *well-formed* when its mesh id is this mesh's and its signature
       verifies. Anything else is rejected and reported in ``problems``.
    3. **Revocations.** A well-formed revocation counts when its signer is a key that has
       ever been admitted (chained to the genesis by well-formed admissions, revocations
       ignored) - any member may revoke any key, itself included, and even a key never
       admitted (a pre-emptive ban). Revocation is forever: a revoked key is never a member
       again, whoever re-admits it and whatever the timestamps say. A key's *cutoff* is the
       earliest ``issued_at`` among the revocations of it that count. Revocations signed by
       a key that is itself revoked still count: a revocation can only remove members, so
       honouring it fails closed.
    4. **Admissions.** The genesis key is the root. An admission of ``node_key`` signed by
       ``admitted_by`` is valid when it is well-formed, ``admitted_by`` is reached from the
       root by valid admissions, and it was issued *before* the admitter's cutoff (if the
       admitter was revoked). There is **no cascade**: revoking a key does not remove the
       members it admitted earlier; its admissions issued at or after its revocation are
       refused. Admission chains that do not lead back to the genesis (unknown admitters,
       cycles such as A admits B admits A) are refused.
    5. **Members** = keys reached by valid admissions (the genesis key included) minus
       revoked keys. Revoking the genesis key is allowed (the first node can be
       decommissioned) and, by rule 4, keeps the members it admitted.

    Caveat: ``issued_at`` is the signer's own clock. A *stolen* key that is revoked can
    still sign admissions back-dated before its revocation; revocation stops a
    decommissioned node or a lost key, and makes any back-dated admission visible (it
    names its admitter) so the admitted key can be revoked in turn.

Invites
    An invite stores ``blake2b(secret, salt=invite id)``, never the secret; a join token
    carries the secret. :func:`check_invite` refuses an unknown, expired, used-up,
    wrong-mesh or wrong-secret redemption with a one-line reason (constant-time compare).
    ``uses_left`` is the only field not covered by the signature (its cap ``max_uses``
    is): redeeming writes ``redeemed(invite)``. Concurrency caveat: it is a plain value in a
    CRDT map, so seeds that redeem the same invite concurrently (before seeing each other's
    update) each write ``uses_left - 1`` and the merge keeps one: an invite may be redeemed
    up to (number of seeds redeeming concurrently - 1) extra times. Like the clock skew on
    ``expires_at``, that is accepted; issue single-use invites with short expiries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeAlias

import msgpack
import nacl.exceptions
import nacl.signing

from mesh import Identity, fingerprint

__all__ = [
    "ADMISSION_CONTEXT",
    "GENESIS_CONTEXT",
    "INVITE_CONTEXT",
    "MESH_ID_LEN",
    "REVOCATION_CONTEXT",
    "TOKEN_PREFIX",
    "Admission",
    "Genesis",
    "Invite",
    "InviteError",
    "Problem",
    "Record",
    "RecordError",
    "Revocation",
    "Token",
    "TokenError",
    "TrustVerifier",
    "check_invite",
    "invite_secret_hash",
    "pack_record",
    "parse_record",
    "redeemed",
]

MESH_ID_LEN = 16
"""Bytes of a mesh id (random)."""
KEY_LEN = 32
"""Bytes of an Ed25519 public key."""
SIGNATURE_LEN = 64
"""Bytes of an Ed25519 signature."""
INVITE_ID_LEN = 16
"""Bytes of an invite id (random; also the salt of the secret's hash)."""
SECRET_LEN = 32
"""Bytes of an invite secret (random)."""
SECRET_HASH_LEN = 32
"""Bytes of the stored hash of an invite secret."""
MAX_NAME = 255
"""Longest node name or revocation reason, in characters."""
MAX_SEEDS = 32
"""Most seed addresses in a join token."""
MAX_SEED_LEN = 262
"""Longest seed address (a DNS name, a bracketed IPv6 address, plus ``:port``)."""
MAX_TOKEN_LEN = 4096
"""Longest join token text accepted by :meth:`Token.decode`."""

GENESIS_CONTEXT = b"nxmesh-genesis-v1"
ADMISSION_CONTEXT = b"nxmesh-admission-v1"
REVOCATION_CONTEXT = b"nxmesh-revocation-v1"
INVITE_CONTEXT = b"nxmesh-invite-v1"
_SECRET_PERSON = b"nxmesh-invite-v1"  # blake2b personalisation: at most 16 bytes

TOKEN_VERSION = 1
TOKEN_PREFIX = f"nxm{TOKEN_VERSION}."
"""Every join token starts with this; the digit is the token format version."""

Plain: TypeAlias = str | int | bytes | None
"""The values of a record's ``to_dict()``."""


class RecordError(ValueError):
    """A stored record is malformed (wrong kind, missing field, wrong type or length)."""


class TokenError(ValueError):
    """A join token cannot be used; ``reason`` is one line for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InviteError(ValueError):
    """An invite cannot be redeemed; ``reason`` is one line for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- encoding helpers ------------------------------------------------------------------


def _signing_bytes(context: bytes, body: Mapping[str, Plain]) -> bytes:
    """``context || 0x00 || msgpack(body with sorted keys)``: what a record's signature covers."""
    packed = msgpack.packb({k: body[k] for k in sorted(body)}, use_bin_type=True)
    return context + b"\x00" + packed


def _verify(key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature of ``message``. Never raises."""
    if len(key) != KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError, RuntimeError):
        return False
    return True


def _short_id(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _get(data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise RecordError(f"missing field {name!r}")
    return data[name]


def _bytes(data: Mapping[str, Any], name: str, length: int) -> bytes:
    value = _get(data, name)
    if not isinstance(value, bytes) or len(value) != length:
        raise RecordError(f"field {name!r} must be {length} bytes")
    return value


def _int(data: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    value = _get(data, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecordError(f"field {name!r} must be an integer >= {minimum}")
    if value >= 2**63:
        raise RecordError(f"field {name!r} is too large")
    return value


def _str(data: Mapping[str, Any], name: str) -> str:
    value = _get(data, name)
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise RecordError(f"field {name!r} must be text of at most {MAX_NAME} characters")
    return value


def _kind(data: Mapping[str, Any], kind: str) -> None:
    if data.get("kind") != kind:
        raise RecordError(f"not a {kind} record")


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Genesis:
    """The mesh's birth certificate: its id and root key, self-signed by that key."""

    kind: ClassVar[Literal["genesis"]] = "genesis"
    context: ClassVar[bytes] = GENESIS_CONTEXT

    mesh_id: bytes
    key: bytes
    name: str
    created_at: int
    signature: bytes = field(repr=False)

    @classmethod
    def create(
        cls, identity: Identity, name: str, now: int, *, mesh_id: bytes | None = None
    ) -> Genesis:
        """A new mesh (random 16-byte id unless given) rooted at ``identity``."""
        mesh_id = os.urandom(MESH_ID_LEN) if mesh_id is None else mesh_id
        unsigned = cls(mesh_id, identity.public_key, name, now, b"")
        return replace(unsigned, signature=identity.sign(unsigned.signing_bytes()))

    def body(self) -> dict[str, Plain]:
        return {
            "mesh_id": self.mesh_id,
            "key": self.key,
            "name": self.name,
            "created_at": self.created_at,
        }

    def signing_bytes(self) -> bytes:
        return _signing_bytes(self.context, self.body())

    @property
    def signer(self) -> bytes:
        return self.key

    @property
    def record_id(self) -> str:
        """Stable id: a hash of the signed content (hex)."""
        return _short_id(self.signing_bytes())

    def is_signed(self) -> bool:
        return _verify(self.key, self.signing_bytes(), self.signature)

    def to_dict(self) -> dict[str, Plain]:
        return {"kind": self.kind, **self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genesis:
        _kind(data, cls.kind)
        return cls(
            mesh_id=_bytes(data, "mesh_id", MESH_ID_LEN),
            key=_bytes(data, "key", KEY_LEN),
            name=_str(data, "name"),
            created_at=_int(data, "created_at"),
            signature=_bytes(data, "signature", SIGNATURE_LEN),
        )


@dataclass(frozen=True, slots=True)
class Admission:
    """``admitted_by`` vouches that ``node_key`` (named ``name``) is a member of the mesh."""

    kind: ClassVar[Literal["admission"]] = "admission"
    context: ClassVar[bytes] = ADMISSION_CONTEXT

    node_key: bytes
    name: str
    admitted_by: bytes
    issued_at: int
    mesh_id: bytes
    invite_id: bytes | None
    signature: bytes = field(repr=False)

    @classmethod
    def create(
        cls,
        admitter: Identity,
        node_key: bytes,
        name: str,
        *,
        mesh_id: bytes,
        now: int,
        invite_id: bytes | None = None,
    ) -> Admission:
        unsigned = cls(node_key, name, admitter.public_key, now, mesh_id, invite_id, b"")
        return replace(unsigned, signature=admitter.sign(unsigned.signing_bytes()))

    def body(self) -> dict[str, Plain]:
        return {
            "node_key": self.node_key,
            "name": self.name,
            "admitted_by": self.admitted_by,
            "issued_at": self.issued_at,
            "mesh_id": self.mesh_id,
            "invite_id": self.invite_id,
        }

    def signing_bytes(self) -> bytes:
        return _signing_bytes(self.context, self.body())

    @property
    def signer(self) -> bytes:
        return self.admitted_by

    @property
    def record_id(self) -> str:
        return _short_id(self.signing_bytes())

    def is_signed(self) -> bool:
        return _verify(self.admitted_by, self.signing_bytes(), self.signature)

    def to_dict(self) -> dict[str, Plain]:
        return {"kind": self.kind, **self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Admission:
        _kind(data, cls.kind)
        invite_id = _get(data, "invite_id")
        if invite_id is not None:
            invite_id = _bytes(data, "invite_id", INVITE_ID_LEN)
        return cls(
            node_key=_bytes(data, "node_key", KEY_LEN),
            name=_str(data, "name"),
            admitted_by=_bytes(data, "admitted_by", KEY_LEN),
            issued_at=_int(data, "issued_at"),
            mesh_id=_bytes(data, "mesh_id", MESH_ID_LEN),
            invite_id=invite_id,
            signature=_bytes(data, "signature", SIGNATURE_LEN),
        )


@dataclass(frozen=True, slots=True)
class Revocation:
    """``revoked_by`` declares ``node_key`` no longer (and never again) a member."""

    kind: ClassVar[Literal["revocation"]] = "revocation"
    context: ClassVar[bytes] = REVOCATION_CONTEXT

    node_key: bytes
    revoked_by: bytes
    issued_at: int
    mesh_id: bytes
    reason: str
    signature: bytes = field(repr=False)

    @classmethod
    def create(
        cls, revoker: Identity, node_key: bytes, *, mesh_id: bytes, now: int, reason: str = ""
    ) -> Revocation:
        unsigned = cls(node_key, revoker.public_key, now, mesh_id, reason, b"")
        return replace(unsigned, signature=revoker.sign(unsigned.signing_bytes()))

    def body(self) -> dict[str, Plain]:
        return {
            "node_key": self.node_key,
            "revoked_by": self.revoked_by,
            "issued_at": self.issued_at,
            "mesh_id": self.mesh_id,
            "reason": self.reason,
        }

    def signing_bytes(self) -> bytes:
        return _signing_bytes(self.context, self.body())

    @property
    def signer(self) -> bytes:
        return self.revoked_by

    @property
    def record_id(self) -> str:
        return _short_id(self.signing_bytes())

    def is_signed(self) -> bool:
        return _verify(self.revoked_by, self.signing_bytes(), self.signature)

    def to_dict(self) -> dict[str, Plain]:
        return {"kind": self.kind, **self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Revocation:
        _kind(data, cls.kind)
        return cls(
            node_key=_bytes(data, "node_key", KEY_LEN),
            revoked_by=_bytes(data, "revoked_by", KEY_LEN),
            issued_at=_int(data, "issued_at"),
            mesh_id=_bytes(data, "mesh_id", MESH_ID_LEN),
            reason=_str(data, "reason"),
            signature=_bytes(data, "signature", SIGNATURE_LEN),
        )


def invite_secret_hash(invite_id: bytes, secret: bytes) -> bytes:
    """What an invite stores instead of its secret: blake2b-256, salted with the invite id.

    The secret is 32 random bytes, so a fast hash is enough (nothing to brute-force).
    """
    return hashlib.blake2b(
        secret, digest_size=SECRET_HASH_LEN, salt=invite_id, person=_SECRET_PERSON
    ).digest()


@dataclass(frozen=True, slots=True)
class Invite:
    """A member's offer to admit whoever presents the matching secret (via a join token).

    The signature covers everything but ``uses_left`` (the counter redemptions decrement;
    it can never exceed the signed ``max_uses``).
    """

    kind: ClassVar[Literal["invite"]] = "invite"
    context: ClassVar[bytes] = INVITE_CONTEXT

    id: bytes
    secret_hash: bytes
    expires_at: int
    uses_left: int
    max_uses: int
    created_by: bytes
    mesh_id: bytes
    signature: bytes = field(repr=False)

    @classmethod
    def create(
        cls, creator: Identity, *, mesh_id: bytes, now: int, ttl: int, uses: int = 1
    ) -> tuple[Invite, bytes]:
        """A new invite valid ``ttl`` seconds for ``uses`` joins, and its secret.

        The secret goes into the token only; the invite keeps its hash.
        """
        if uses < 1 or ttl < 1:
            raise ValueError("an invite needs at least one use and a positive lifetime")
        invite_id = os.urandom(INVITE_ID_LEN)
        secret = os.urandom(SECRET_LEN)
        unsigned = cls(
            invite_id,
            invite_secret_hash(invite_id, secret),
            now + ttl,
            uses,
            uses,
            creator.public_key,
            mesh_id,
            b"",
        )
        return replace(unsigned, signature=creator.sign(unsigned.signing_bytes())), secret

    def body(self) -> dict[str, Plain]:
        """The signed fields (``uses_left`` is not one of them)."""
        return {
            "id": self.id,
            "secret_hash": self.secret_hash,
            "expires_at": self.expires_at,
            "max_uses": self.max_uses,
            "created_by": self.created_by,
            "mesh_id": self.mesh_id,
        }

    def signing_bytes(self) -> bytes:
        return _signing_bytes(self.context, self.body())

    @property
    def signer(self) -> bytes:
        return self.created_by

    @property
    def record_id(self) -> str:
        """The invite id in hex (what tokens and documents name it by)."""
        return self.id.hex()

    def is_signed(self) -> bool:
        return _verify(self.created_by, self.signing_bytes(), self.signature)

    def to_dict(self) -> dict[str, Plain]:
        return {
            "kind": self.kind,
            **self.body(),
            "uses_left": self.uses_left,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invite:
        _kind(data, cls.kind)
        max_uses = _int(data, "max_uses", minimum=1)
        uses_left = _int(data, "uses_left")
        if uses_left > max_uses:
            raise RecordError("field 'uses_left' exceeds 'max_uses'")
        return cls(
            id=_bytes(data, "id", INVITE_ID_LEN),
            secret_hash=_bytes(data, "secret_hash", SECRET_HASH_LEN),
            expires_at=_int(data, "expires_at"),
            uses_left=uses_left,
            max_uses=max_uses,
            created_by=_bytes(data, "created_by", KEY_LEN),
            mesh_id=_bytes(data, "mesh_id", MESH_ID_LEN),
            signature=_bytes(data, "signature", SIGNATURE_LEN),
        )


Record: TypeAlias = Genesis | Admission | Revocation | Invite
_KINDS: dict[str, type[Genesis] | type[Admission] | type[Revocation] | type[Invite]] = {
    "genesis": Genesis,
    "admission": Admission,
    "revocation": Revocation,
    "invite": Invite,
}


def parse_record(data: Mapping[str, Any] | bytes) -> Record:
    """A record from its ``to_dict()`` form or msgpack of it; :class:`RecordError` if bad."""
    if isinstance(data, bytes):
        try:
            data = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise RecordError("record is not valid msgpack") from exc
    if not isinstance(data, Mapping):
        raise RecordError("record is not a map")
    cls = _KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise RecordError("unknown record kind")
    return cls.from_dict(data)


def pack_record(record: Record) -> bytes:
    """msgpack of ``record.to_dict()`` (what :func:`parse_record` reads back)."""
    return msgpack.packb(record.to_dict(), use_bin_type=True)


# --- invites ---------------------------------------------------------------------------


def check_invite(invite: Invite | None, secret: bytes, now: int, *, mesh_id: bytes) -> None:
    """Refuse a redemption with :class:`InviteError` and a one-line reason, or return.

    ``invite`` is the stored invite the token names (``None`` when there is none);
    ``mesh_id`` is the mesh the redeemer means to join (the token's). Checks the invite's
    own signature too, but not whether its creator is still a member: the verifier's
    :meth:`TrustVerifier.check_token` does that.
    """
    if invite is None:
        raise InviteError("unknown invite (never issued here, or already removed)")
    if not hmac.compare_digest(invite.mesh_id, mesh_id):
        raise InviteError("the invite belongs to another mesh")
    if not invite.is_signed():
        raise InviteError("the invite's signature is invalid (forged or damaged)")
    if now >= invite.expires_at:
        raise InviteError(f"the invite expired {now - invite.expires_at}s ago")
    if invite.uses_left <= 0:
        raise InviteError(f"the invite is used up (all {invite.max_uses} uses taken)")
    if not hmac.compare_digest(invite_secret_hash(invite.id, secret), invite.secret_hash):
        raise InviteError("wrong invite secret")


def redeemed(invite: Invite) -> Invite:
    """The invite after one more use (write it back into the document)."""
    if invite.uses_left <= 0:
        raise InviteError(f"the invite is used up (all {invite.max_uses} uses taken)")
    return replace(invite, uses_left=invite.uses_left - 1)


# --- join tokens -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """What ``nxmesh invite`` prints and ``nxmesh join`` reads.

    Carries the full genesis key (not only its fingerprint) so the joiner can check the
    chain of admissions it downloads against the right root.
    """

    mesh_id: bytes
    genesis_key: bytes
    seeds: tuple[str, ...]
    invite_id: bytes
    secret: bytes = field(repr=False)

    @property
    def genesis_fingerprint(self) -> str:
        return fingerprint(self.genesis_key)

    def encode(self) -> str:
        """``nxm1.`` + unpadded url-safe base64 of msgpack ``[mesh_id, genesis, seeds, id,
        secret]``."""
        packed = msgpack.packb(
            [self.mesh_id, self.genesis_key, list(self.seeds), self.invite_id, self.secret],
            use_bin_type=True,
        )
        return TOKEN_PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Token:
        """Parse a token; :class:`TokenError` with a one-line reason when it is unusable."""
        text = text.strip()
        if len(text) > MAX_TOKEN_LEN:
            raise TokenError("not a join token (too long)")
        head, dot, payload = text.partition(".")
        if not dot or not head.startswith("nxm"):
            raise TokenError("not an NxMesh join token (it should start with 'nxm1.')")
        if head != TOKEN_PREFIX[:-1]:
            version = head[3:] or "?"
            raise TokenError(
                f"unsupported join token version {version!r} (this node reads {TOKEN_VERSION})"
            )
        try:
            raw = base64.b64decode(
                payload + "=" * (-len(payload) % 4), altchars=b"-_", validate=True
            )
        except (binascii.Error, ValueError) as exc:
            raise TokenError("damaged join token (not base64; was it cut when copied?)") from exc
        try:
            fields = msgpack.unpackb(raw, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise TokenError("damaged join token (undecodable; was it cut when copied?)") from exc
        if not isinstance(fields, list) or len(fields) != 5:
            raise TokenError("damaged join token (wrong shape)")
        mesh_id, genesis_key, seeds, invite_id, secret = fields
        for value, length, what in (
            (mesh_id, MESH_ID_LEN, "mesh id"),
            (genesis_key, KEY_LEN, "genesis key"),
            (invite_id, INVITE_ID_LEN, "invite id"),
            (secret, SECRET_LEN, "secret"),
        ):
            if not isinstance(value, bytes) or len(value) != length:
                raise TokenError(f"damaged join token (bad {what})")
        if (
            not isinstance(seeds, list)
            or not 1 <= len(seeds) <= MAX_SEEDS
            or not all(isinstance(s, str) and 0 < len(s) <= MAX_SEED_LEN for s in seeds)
        ):
            raise TokenError("damaged join token (bad seed addresses)")
        return cls(mesh_id, genesis_key, tuple(seeds), invite_id, secret)


# --- the verifier ----------------------------------------------------------------------

Problem: TypeAlias = tuple[str, str]
"""``(record id, one-line reason)``."""


class TrustVerifier:
    """The member set of one mesh, computed from its trust records (rules: module doc).

    Build it on the node's own genesis, feed it every record of the mesh document with
    :meth:`update` (the whole collection each time, any order, dicts or records), then
    ask :meth:`is_member` (O(1): a precomputed set). Rejected records are listed in
    :attr:`problems` as ``(record id, reason)``; they never raise.
    """

    def __init__(
        self, genesis: Genesis, records: Iterable[Record | Mapping[str, Any]] = ()
    ) -> None:
        if len(genesis.mesh_id) != MESH_ID_LEN or not genesis.is_signed():
            raise ValueError("the genesis record is not validly self-signed")
        self.genesis = genesis
        self.members: frozenset[bytes] = frozenset()
        """Current members (what :meth:`is_member` answers from)."""
        self.revoked: frozenset[bytes] = frozenset()
        """Keys revoked forever."""
        self.names: dict[bytes, str] = {}
        """Name of each member, from its earliest valid admission."""
        self.known_names: dict[bytes, str] = {}
        """Names of every key ever validly admitted, revoked ones included."""
        self.invites: dict[bytes, Invite] = {}
        """Well-formed invites by id (including those of since-revoked creators)."""
        self.problems: list[Problem] = []
        self._sig_ok: dict[tuple[str, bytes], bool] = {}
        self.update(records)

    @property
    def mesh_id(self) -> bytes:
        return self.genesis.mesh_id

    def is_member(self, key: bytes) -> bool:
        """mesh/'s delegate question: may ``key`` take part in the mesh now?"""
        return key in self.members

    def _signed(self, record: Record) -> bool:
        cache_key = (record.kind, record.signing_bytes() + record.signature)
        ok = self._sig_ok.get(cache_key)
        if ok is None:
            ok = record.is_signed()
            self._sig_ok[cache_key] = ok
        return ok

    def update(self, records: Iterable[Record | Mapping[str, Any]]) -> None:
        """Recompute everything from ``records``: the whole current collection."""
        problems: list[Problem] = []
        admissions: list[Admission] = []
        revocations: list[Revocation] = []
        invites: dict[bytes, Invite] = {}
        seen: set[tuple[str, bytes]] = set()
        for index, item in enumerate(records):
            if isinstance(item, Genesis | Admission | Revocation | Invite):
                record: Record = item
            else:
                try:
                    record = parse_record(item)
                except RecordError as exc:
                    problems.append((f"#{index}", f"malformed record: {exc}"))
                    continue
            cache_key = (record.kind, record.signing_bytes() + record.signature)
            if cache_key in seen:
                continue
            seen.add(cache_key)
            if isinstance(record, Genesis):
                if record != self.genesis:
                    problems.append((record.record_id, "a different genesis record: ignored"))
                continue
            if record.mesh_id != self.mesh_id:
                problems.append((record.record_id, f"{record.kind} for another mesh"))
                continue
            if not self._signed(record):
                problems.append(
                    (
                        record.record_id,
                        f"{record.kind}: forged or damaged signature "
                        f"(claims signer {fingerprint(record.signer)})",
                    )
                )
                continue
            if isinstance(record, Admission):
                admissions.append(record)
            elif isinstance(record, Revocation):
                revocations.append(record)
            else:
                invites[record.id] = record
        # Keep the signature cache to what is still stored.
        self._sig_ok = {k: v for k, v in self._sig_ok.items() if k in seen}

        root = self.genesis.key
        by_admitter: dict[bytes, list[Admission]] = {}
        for adm in admissions:
            by_admitter.setdefault(adm.admitted_by, []).append(adm)

        # Rule 3: revocations count when signed by a key ever chained to the genesis.
        ever = _closure(root, by_admitter, {})
        cutoff: dict[bytes, int] = {}
        for rev in revocations:
            if rev.revoked_by not in ever:
                problems.append(
                    (
                        rev.record_id,
                        f"revocation signed by {fingerprint(rev.revoked_by)}, "
                        "which was never admitted",
                    )
                )
                continue
            previous = cutoff.get(rev.node_key)
            if previous is None or rev.issued_at < previous:
                cutoff[rev.node_key] = rev.issued_at

        # Rule 4: admissions from the root, each before its admitter's revocation.
        reached = _closure(root, by_admitter, cutoff)
        names: dict[bytes, str] = {root: self.genesis.name}
        for adm in sorted(admissions, key=lambda a: (a.issued_at, a.record_id)):
            who = f"admission of {fingerprint(adm.node_key)} by {fingerprint(adm.admitted_by)}"
            if adm.admitted_by not in reached:
                problems.append(
                    (adm.record_id, f"{who}: the admitter is not chained to the genesis key")
                )
            elif adm.issued_at >= cutoff.get(adm.admitted_by, _NEVER):
                problems.append((adm.record_id, f"{who}: issued after the admitter's revocation"))
            elif adm.issued_at >= cutoff.get(adm.node_key, _NEVER):
                problems.append((adm.record_id, f"{who}: that key was revoked and stays revoked"))
            else:
                names.setdefault(adm.node_key, adm.name)

        revoked = frozenset(cutoff)
        members = frozenset(reached - revoked)
        for inv in invites.values():
            if inv.created_by not in reached:
                problems.append(
                    (inv.record_id, "invite created by a key not chained to the genesis key")
                )
        self.members = members
        self.revoked = revoked
        self.names = {k: v for k, v in names.items() if k in members}
        self.known_names = names
        self.invites = invites
        self.problems = problems

    def check_token(self, token: Token, now: int) -> Invite:
        """Refuse a join token with :class:`InviteError` (one-line reason) or return the
        invite it redeems (the caller writes ``redeemed(invite)`` and an admission)."""
        if token.mesh_id != self.mesh_id:
            raise InviteError("the token is for another mesh")
        if token.genesis_key != self.genesis.key:
            raise InviteError("the token names another genesis key (wrong mesh or forged)")
        invite = self.invites.get(token.invite_id)
        check_invite(invite, token.secret, now, mesh_id=token.mesh_id)
        assert invite is not None  # check_invite refused None
        if invite.created_by not in self.members:
            raise InviteError("the invite's creator is no longer a member")
        return invite


_NEVER = 2**63


def _closure(
    root: bytes, by_admitter: Mapping[bytes, list[Admission]], cutoff: Mapping[bytes, int]
) -> set[bytes]:
    """Keys reached from ``root`` by admissions issued before their admitter's cutoff."""
    reached = {root}
    todo = deque([root])
    while todo:
        admitter = todo.popleft()
        limit = cutoff.get(admitter, _NEVER)
        for adm in by_admitter.get(admitter, ()):
            if adm.issued_at < limit and adm.node_key not in reached:
                reached.add(adm.node_key)
                todo.append(adm.node_key)
    return reached
