"""Authenticated, encrypted datagrams between members (sans-I/O).

Sealed datagram, kind 1 (:class:`DatagramSeal`)
-----------------------------------------------

All integers big-endian::

    offset  size  field
    0       1     version      u8 = 1
    1       1     kind         u8 = 1 (sealed datagram)
    2       32    sender       the sender's Ed25519 public key (its node id)
    34      24    nonce        random; bit 0x80 of nonce[0] is the direction bit (below)
    58      16+n  box          crypto_box ciphertext (16-byte Poly1305 MAC, then n bytes)

The box is NaCl ``crypto_box`` (X25519 + XSalsa20-Poly1305) between the sender's and the
receiver's keys, both converted from Ed25519 to X25519. Its plaintext is::

    0       8     boot_epoch   u64, the sender's boot epoch
    8       8     seq          u64, the sender's datagram counter (1, 2, ... per epoch)
    16      n     payload

Overhead: 1 + 1 + 32 + 24 + 16 + 16 = :data:`DATAGRAM_OVERHEAD` = 90 bytes.

**Direction bit.** A crypto_box key is shared by both directions of a pair, so a datagram
from A to B, sent back to A with the header's sender rewritten to B, would open at A as if
B had sent it (a reflection). The top bit of ``nonce[0]`` is therefore fixed by the
direction: it is 1 when the sender's key sorts (as bytes) below the receiver's key, and 0
otherwise. The nonce is authenticated by the box, so a reflected datagram fails the check
(reported as ``BAD_MAC``). The other 191 nonce bits stay random.

**Replay.** The receiver keeps a sliding window per sender over ``(boot_epoch, seq)``
(:mod:`mesh.replay`). ``seq`` is one counter per sender for all its receivers, so a
receiver sees gaps; the window (1024 by default) is counted in the sender's datagrams.
``boot_epoch`` must grow every time a node starts (a persisted counter, or a clock known
never to go back); a node that restarts with an epoch not above its last one is ignored by
its peers until that epoch is passed.

Checks in :meth:`DatagramSeal.open`, in this order, each a :class:`~mesh.errors.DropReason`:
length (``TRUNCATED`` below the overhead, ``OVERSIZED`` above ``max_datagram``), version
(``BAD_VERSION``), kind (``MALFORMED``), sender is this node (``SELF``), sender is not a
member (``NOT_MEMBER``, decided before any cryptography, so a non-member's datagram costs
a dictionary lookup), sender key not a valid point (``MALFORMED``), direction bit or box
(``BAD_MAC``), replay window (``REPLAY``). ``open`` never raises on any input bytes.

Plain datagram, kind 2 (:class:`PlainSeal`) - SIMULATIONS ONLY
--------------------------------------------------------------

::

    0       1     version      u8 = 1
    1       1     kind         u8 = 2 (plain datagram)
    2       32    sender       the sender's node id
    34      8     boot_epoch   u64
    42      8     seq          u64
    50      n     payload

Overhead :data:`PLAIN_OVERHEAD` = 50 bytes. **No encryption and no authentication**: anyone
can forge any sender. It exists so that large deterministic simulations can skip the cost
of cryptography that is not their subject; membership and replay are still enforced, so
the protocol logic behaves as with :class:`DatagramSeal`. A :class:`DatagramSeal` refuses
kind 2 (``MALFORMED``) and a :class:`PlainSeal` refuses kind 1: the two never mix.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import nacl.exceptions
import nacl.public
import nacl.utils

from mesh.errors import DropReason, LocalProtocolError
from mesh.keys import PUBLIC_KEY_LEN, Identity, x25519_public
from mesh.replay import DEFAULT_MAX_SENDERS, ReplayGuard

VERSION = 1
"""Datagram format version (first byte)."""

KIND_SEALED = 1
"""Second byte of a :class:`DatagramSeal` datagram."""

KIND_PLAIN = 2
"""Second byte of a :class:`PlainSeal` datagram (simulations only)."""

NONCE_LEN = 24
MAC_LEN = 16
MAX_U64 = 2**64 - 1

MAX_UDP_DATAGRAM = 65507
"""Largest UDP payload over IPv4, the default ``max_datagram``."""

_HEADER_LEN = 1 + 1 + PUBLIC_KEY_LEN  # version, kind, sender
_COUNTERS = struct.Struct(">QQ")  # boot_epoch, seq

DATAGRAM_OVERHEAD = _HEADER_LEN + NONCE_LEN + MAC_LEN + _COUNTERS.size
"""Bytes a :class:`DatagramSeal` adds to a payload (90)."""

PLAIN_OVERHEAD = _HEADER_LEN + _COUNTERS.size
"""Bytes a :class:`PlainSeal` adds to a payload (50)."""

_DIRECTION_BIT = 0x80


@dataclass(frozen=True, slots=True)
class Opened:
    """A datagram that passed every check: who sent it and what it carries."""

    sender: bytes
    payload: bytes


class Seal(Protocol):
    """What the mesh core needs from a datagram seal (:class:`DatagramSeal`,
    :class:`PlainSeal`)."""

    @property
    def public_key(self) -> bytes:
        """This node's id, the sender named in the datagrams it seals."""
        ...

    @property
    def overhead(self) -> int:
        """Bytes a sealed datagram adds to its payload."""
        ...

    @property
    def boot_epoch(self) -> int:
        """This node's boot epoch, carried in every datagram it seals."""
        ...

    def seal(self, peer_key: bytes, payload: bytes) -> bytes:
        """The datagram carrying ``payload`` to ``peer_key``."""
        ...

    def open(self, data: bytes) -> Opened | DropReason:
        """The sender and payload of a datagram, or why it is dropped. Never raises."""
        ...

    def forget(self, peer_key: bytes) -> None:
        """Drop everything cached about ``peer_key`` (a revoked member)."""
        ...


def _direction(sender: bytes, receiver: bytes) -> int:
    return _DIRECTION_BIT if sender < receiver else 0


def _check_epoch(boot_epoch: int) -> None:
    if not 0 <= boot_epoch <= MAX_U64:
        raise ValueError("boot_epoch is an unsigned 64-bit integer")


class _SealBase:
    """Sequence numbering, size limits and the replay guard shared by both seals."""

    __slots__ = (
        "_boot_epoch",
        "_is_member",
        "_max_datagram",
        "_public",
        "_replay",
        "_seq",
    )

    _OVERHEAD = 0

    def __init__(
        self,
        public_key: bytes,
        is_member: Callable[[bytes], bool],
        *,
        boot_epoch: int,
        replay_window: int,
        max_senders: int,
        max_datagram: int,
    ) -> None:
        _check_epoch(boot_epoch)
        if max_datagram <= self._OVERHEAD:
            raise ValueError(f"max_datagram must exceed the overhead ({self._OVERHEAD} bytes)")
        self._public = public_key
        self._is_member = is_member
        self._boot_epoch = boot_epoch
        self._seq = 0
        self._max_datagram = max_datagram
        self._replay = ReplayGuard(window=replay_window, max_senders=max_senders)

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def overhead(self) -> int:
        return self._OVERHEAD

    @property
    def boot_epoch(self) -> int:
        return self._boot_epoch

    @property
    def seq(self) -> int:
        """Sequence number of the last datagram sealed (0 before the first)."""
        return self._seq

    @property
    def max_payload(self) -> int:
        """Largest payload :meth:`seal` accepts (``max_datagram - overhead``)."""
        return self._max_datagram - self._OVERHEAD

    @property
    def tracked_senders(self) -> int:
        """Senders with a replay window."""
        return len(self._replay)

    def _next_counters(self, peer_key: bytes, payload: bytes) -> bytes:
        if peer_key == self._public:
            raise LocalProtocolError("a node does not seal datagrams to itself")
        if len(payload) > self.max_payload:
            raise LocalProtocolError(
                f"payload of {len(payload)} bytes; at most {self.max_payload} fit a datagram"
            )
        if self._seq >= MAX_U64:
            raise LocalProtocolError("datagram sequence exhausted: restart with a new epoch")
        self._seq += 1
        return _COUNTERS.pack(self._boot_epoch, self._seq)

    def _precheck(self, data: bytes, kind: int) -> bytes | DropReason:
        """Length, version, kind, self and membership checks; the sender if all pass."""
        size = len(data)
        if size < self._OVERHEAD:
            return DropReason.TRUNCATED
        if size > self._max_datagram:
            return DropReason.OVERSIZED
        if data[0] != VERSION:
            return DropReason.BAD_VERSION
        if data[1] != kind:
            return DropReason.MALFORMED
        sender = bytes(data[2:_HEADER_LEN])
        if sender == self._public:
            return DropReason.SELF
        if not self._is_member(sender):
            return DropReason.NOT_MEMBER
        return sender

    def _forget_replay(self, peer_key: bytes) -> None:
        self._replay.forget(peer_key)


class DatagramSeal(_SealBase):
    """Seals and opens kind-1 datagrams: crypto_box between sender and receiver.

    ``is_member`` decides who may send (the delegate's admission records); it must not
    raise. ``boot_epoch`` must grow across restarts of this node (see the module text).
    ``max_peers`` bounds the cache of precomputed boxes (building one costs ~10 uses);
    ``max_senders`` bounds the replay windows and should exceed the mesh size.
    ``nonce_source(n)`` returns ``n`` random bytes; simulations inject a seeded one.
    """

    __slots__ = ("_boxes", "_identity", "_max_peers", "_nonce_source")

    _OVERHEAD = DATAGRAM_OVERHEAD

    def __init__(
        self,
        identity: Identity,
        is_member: Callable[[bytes], bool],
        *,
        boot_epoch: int,
        replay_window: int = 1024,
        max_peers: int = 4096,
        max_senders: int = DEFAULT_MAX_SENDERS,
        max_datagram: int = MAX_UDP_DATAGRAM,
        nonce_source: Callable[[int], bytes] = nacl.utils.random,
    ) -> None:
        super().__init__(
            identity.public_key,
            is_member,
            boot_epoch=boot_epoch,
            replay_window=replay_window,
            max_senders=max_senders,
            max_datagram=max_datagram,
        )
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self._identity = identity
        self._max_peers = max_peers
        self._nonce_source = nonce_source
        self._boxes: OrderedDict[bytes, nacl.public.Box] = OrderedDict()

    @property
    def cached_peers(self) -> int:
        """Precomputed boxes held (at most ``max_peers``)."""
        return len(self._boxes)

    def _box(self, peer_key: bytes) -> nacl.public.Box:
        """The precomputed box for ``peer_key``; :class:`ValueError` for an invalid key."""
        box = self._boxes.get(peer_key)
        if box is not None:
            self._boxes.move_to_end(peer_key)
            return box
        try:
            box = nacl.public.Box(self._identity.x25519_private, x25519_public(peer_key))
        except nacl.exceptions.CryptoError as exc:  # an all-zero shared secret
            raise ValueError("no shared key with this public key") from exc
        self._boxes[peer_key] = box
        while len(self._boxes) > self._max_peers:
            self._boxes.popitem(last=False)
        return box

    def seal(self, peer_key: bytes, payload: bytes) -> bytes:
        """The datagram carrying ``payload`` to ``peer_key``.

        Raises :class:`ValueError` for an invalid peer key and
        :class:`~mesh.errors.LocalProtocolError` for a payload over :attr:`max_payload`
        or a datagram to this node itself.
        """
        counters = self._next_counters(peer_key, payload)
        box = self._box(peer_key)
        nonce = bytearray(self._nonce_source(NONCE_LEN))
        if len(nonce) != NONCE_LEN:
            raise LocalProtocolError(f"nonce_source returned {len(nonce)} bytes, not 24")
        nonce[0] = (nonce[0] & ~_DIRECTION_BIT & 0xFF) | _direction(self._public, peer_key)
        sealed = box.encrypt(counters + payload, bytes(nonce))
        return bytes((VERSION, KIND_SEALED)) + self._public + sealed  # sealed = nonce + box

    def open(self, data: bytes) -> Opened | DropReason:
        """The sender and payload of ``data``, or why it is dropped. Never raises."""
        if not isinstance(data, bytes):
            data = bytes(data)
        sender = self._precheck(data, KIND_SEALED)
        if isinstance(sender, DropReason):
            return sender
        try:
            box = self._box(sender)
        except ValueError:
            return DropReason.MALFORMED
        nonce = data[_HEADER_LEN : _HEADER_LEN + NONCE_LEN]
        if nonce[0] & _DIRECTION_BIT != _direction(sender, self._public):
            return DropReason.BAD_MAC
        try:
            plain = box.decrypt(data[_HEADER_LEN + NONCE_LEN :], nonce)
        except nacl.exceptions.CryptoError:
            return DropReason.BAD_MAC
        epoch, seq = _COUNTERS.unpack_from(plain)
        if not self._replay.check_and_update(sender, epoch, seq):
            return DropReason.REPLAY
        return Opened(sender, plain[_COUNTERS.size :])

    def forget(self, peer_key: bytes) -> None:
        """Drop the cached box and the replay window of ``peer_key`` (a revoked member)."""
        self._boxes.pop(peer_key, None)
        self._forget_replay(peer_key)


class PlainSeal(_SealBase):
    """Kind-2 datagrams: NO ENCRYPTION, NO AUTHENTICATION. FOR SIMULATIONS ONLY.

    Same interface and checks as :class:`DatagramSeal` (membership and replay are
    enforced) without the cryptography, for large deterministic simulations. Never use it
    on a real network: anyone can forge any member's datagrams. ``identity`` may be an
    :class:`~mesh.keys.Identity` or just a 32-byte node id.
    """

    __slots__ = ()

    _OVERHEAD = PLAIN_OVERHEAD

    def __init__(
        self,
        identity: Identity | bytes,
        is_member: Callable[[bytes], bool],
        *,
        boot_epoch: int,
        replay_window: int = 1024,
        max_peers: int = 4096,
        max_senders: int = DEFAULT_MAX_SENDERS,
        max_datagram: int = MAX_UDP_DATAGRAM,
    ) -> None:
        public = identity.public_key if isinstance(identity, Identity) else bytes(identity)
        if len(public) != PUBLIC_KEY_LEN:
            raise ValueError(f"a node id is {PUBLIC_KEY_LEN} bytes")
        del max_peers  # nothing to cache: accepted so both seals are built alike
        super().__init__(
            public,
            is_member,
            boot_epoch=boot_epoch,
            replay_window=replay_window,
            max_senders=max_senders,
            max_datagram=max_datagram,
        )

    def seal(self, peer_key: bytes, payload: bytes) -> bytes:
        """The (unprotected) datagram carrying ``payload`` to ``peer_key``."""
        counters = self._next_counters(peer_key, payload)
        return bytes((VERSION, KIND_PLAIN)) + self._public + counters + payload

    def open(self, data: bytes) -> Opened | DropReason:
        """The sender and payload of ``data``, or why it is dropped. Never raises."""
        if not isinstance(data, bytes):
            data = bytes(data)
        sender = self._precheck(data, KIND_PLAIN)
        if isinstance(sender, DropReason):
            return sender
        epoch, seq = _COUNTERS.unpack_from(data, _HEADER_LEN)
        if not self._replay.check_and_update(sender, epoch, seq):
            return DropReason.REPLAY
        return Opened(sender, data[PLAIN_OVERHEAD:])

    def forget(self, peer_key: bytes) -> None:
        """Drop the replay window of ``peer_key``."""
        self._forget_replay(peer_key)
