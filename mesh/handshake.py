"""TCP stream security (sans-I/O): a signed ephemeral handshake, then sealed frames.

The driver owns the socket; this module turns bytes read into sessions, frames or drop
reasons, and returns the bytes to write. Nothing here raises on hostile bytes.

Handshake
---------

The dialling side (initiator) writes a *hello*; the listening side (responder) answers with
a *reply*. All integers big-endian; ``||`` is concatenation::

    hello (initiator -> responder), hello_length(mesh_id) = 130 + len(mesh_id) bytes
    offset      size  field
    0           1     version        u8 = 1
    1           1     mesh_id_len    u8, 1..255
    2           L     mesh_id
    2+L         32    i_static       initiator's Ed25519 public key (node id)
    34+L        32    i_eph          initiator's fresh X25519 public key
    66+L        64    signature      by i_static over
                                     "nxmesh-stream-v1 hello" || mesh_id || i_eph

    reply (responder -> initiator), REPLY_LENGTH = 129 bytes
    0           1     version        u8 = 1
    1           32    r_static       responder's Ed25519 public key
    33          32    r_eph          responder's fresh X25519 public key
    65          64    signature      by r_static over
                                     "nxmesh-stream-v1 reply" || mesh_id || i_eph || r_eph
                                     || i_static

The reply's signature covers the initiator's ephemeral key and identity, so it answers
this hello only. A replayed hello gets a reply, but without the ephemeral secret the
replayer cannot derive the keys: its frames fail and it can read none. A responder should
therefore count a peer as proven only once its first frame has opened.

To read a hello whose mesh id length it does not know yet, a driver reads
:data:`HELLO_PREFIX_LENGTH` bytes and asks :func:`hello_length_from_prefix`.

Keys
----

``shared = X25519(own eph secret, peer eph)`` (``crypto_scalarmult``; an all-zero result
is refused), ``transcript = mesh_id_len || mesh_id || i_eph || r_eph || i_static ||
r_static`` and, for each direction::

    key_i2r = BLAKE2b-256(transcript, key=shared, person="nxmesh-v1-i2r")
    key_r2i = BLAKE2b-256(transcript, key=shared, person="nxmesh-v1-r2i")

(``person`` zero-padded to 16 bytes, as libsodium does.) The ephemeral secrets are
dropped once the keys exist, so recorded streams stay secret if a node key leaks later.

Frames
------

::

    0     4      length    u32, length of the sealed body (>= 16, <= max_frame)
    4     length body      XSalsa20-Poly1305 (SecretBox) of the payload: 16-byte MAC, data

The nonce is not sent: it is 16 zero bytes followed by a u64 frame counter, one counter
per direction starting at 0. A dropped, replayed, reordered or cross-direction frame thus
fails the MAC. The receiver refuses a length over its ``max_frame`` as soon as the prefix
arrives, before buffering any body; after any error the session is poisoned and repeats
the error forever (the driver closes the stream).
"""

from __future__ import annotations

from collections.abc import Callable

import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.utils

from mesh.errors import DropReason, LocalProtocolError
from mesh.keys import PUBLIC_KEY_LEN, SIGNATURE_LEN, Identity, verify

VERSION = 1
"""Stream handshake version (first byte of hello and reply)."""

HELLO_CONTEXT = b"nxmesh-stream-v1 hello"
REPLY_CONTEXT = b"nxmesh-stream-v1 reply"
_PERSON_I2R = b"nxmesh-v1-i2r"
_PERSON_R2I = b"nxmesh-v1-r2i"

EPH_LEN = 32
MAX_MESH_ID = 255

HELLO_PREFIX_LENGTH = 2
"""Bytes of a hello that give its whole length (version, mesh_id_len)."""

_HELLO_FIXED = 2 + PUBLIC_KEY_LEN + EPH_LEN + SIGNATURE_LEN  # 130

REPLY_LENGTH = 1 + PUBLIC_KEY_LEN + EPH_LEN + SIGNATURE_LEN
"""Exact length of a reply (129)."""

FRAME_PREFIX = 4
"""Bytes of a frame's length prefix."""

FRAME_MAC = nacl.secret.SecretBox.MACBYTES
"""Bytes a frame's body adds to its payload (16)."""

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""Default cap on a frame's sealed body."""

MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1
_NONCE_PAD = bytes(nacl.secret.SecretBox.NONCE_SIZE - 8)

IsMember = Callable[[bytes], bool]


def hello_length(mesh_id: bytes) -> int:
    """Exact length of a hello for ``mesh_id`` (130 + its length)."""
    return _HELLO_FIXED + len(mesh_id)


def hello_length_from_prefix(prefix: bytes) -> int | DropReason:
    """Whole length of the hello that starts with ``prefix`` (at least 2 bytes)."""
    if len(prefix) < HELLO_PREFIX_LENGTH:
        return DropReason.TRUNCATED
    if prefix[0] != VERSION:
        return DropReason.BAD_VERSION
    if prefix[1] == 0:
        return DropReason.MALFORMED
    return _HELLO_FIXED + prefix[1]


def _check_mesh_id(mesh_id: bytes) -> bytes:
    if not isinstance(mesh_id, bytes | bytearray) or not 1 <= len(mesh_id) <= MAX_MESH_ID:
        raise ValueError(f"a mesh id is 1 to {MAX_MESH_ID} bytes")
    return bytes(mesh_id)


def _check_max_frame(max_frame: int) -> None:
    if not FRAME_MAC <= max_frame <= MAX_U32:
        raise ValueError(f"max_frame must be between {FRAME_MAC} and {MAX_U32}")


class _Ephemeral:
    """A fresh X25519 key pair for one handshake."""

    __slots__ = ("public", "secret")

    def __init__(self, random_source: Callable[[int], bytes]) -> None:
        secret = random_source(EPH_LEN)
        if len(secret) != EPH_LEN:
            raise LocalProtocolError(f"random_source returned {len(secret)} bytes, not 32")
        self.secret = bytes(secret)
        self.public: bytes = nacl.bindings.crypto_scalarmult_base(self.secret)


def _session_keys(
    eph_secret: bytes,
    peer_eph: bytes,
    mesh_id: bytes,
    i_eph: bytes,
    r_eph: bytes,
    i_static: bytes,
    r_static: bytes,
) -> tuple[bytes, bytes] | None:
    """``(key_i2r, key_r2i)``, or None if the peer's ephemeral key gives no secret."""
    try:
        shared = nacl.bindings.crypto_scalarmult(eph_secret, peer_eph)
    except (nacl.exceptions.CryptoError, ValueError, TypeError, RuntimeError):
        return None
    if shared == bytes(len(shared)):
        return None
    transcript = bytes((len(mesh_id),)) + mesh_id + i_eph + r_eph + i_static + r_static
    raw = nacl.encoding.RawEncoder
    i2r = nacl.hash.blake2b(transcript, digest_size=32, key=shared, person=_PERSON_I2R, encoder=raw)
    r2i = nacl.hash.blake2b(transcript, digest_size=32, key=shared, person=_PERSON_R2I, encoder=raw)
    return i2r, r2i


class FrameCipher:
    """SecretBox with a counter nonce (16 zero bytes, then u64 big-endian) for one direction.

    Sealing and opening both advance the counter; opening advances it only on success.
    """

    __slots__ = ("_box", "_counter")

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)
        self._counter = 0

    @property
    def counter(self) -> int:
        """The counter the next frame uses."""
        return self._counter

    def _nonce(self) -> bytes:
        if self._counter > MAX_U64:
            raise LocalProtocolError("frame counter exhausted: open a new stream")
        return _NONCE_PAD + self._counter.to_bytes(8, "big")

    def seal(self, payload: bytes) -> bytes:
        """The sealed body (MAC + ciphertext) of ``payload``."""
        body = self._box.encrypt(payload, self._nonce()).ciphertext
        self._counter += 1
        return body

    def open(self, body: bytes) -> bytes | None:
        """The payload of ``body``, or None if it fails the MAC for the expected counter."""
        if self._counter > MAX_U64:
            return None
        try:
            payload = self._box.decrypt(body, self._nonce())
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            return None
        self._counter += 1
        return payload


class Session:
    """A secured stream after the handshake: seals outgoing frames, decodes incoming ones.

    ``feed`` the bytes read, then call ``next_frame`` until it returns None (need more
    bytes). A :class:`~mesh.errors.DropReason` poisons the session: the driver closes the
    stream.
    """

    __slots__ = (
        "_buffer",
        "_error",
        "_max_frame",
        "_max_recv",
        "_recv",
        "_send",
        "peer",
        "stranger",
    )

    def __init__(
        self,
        peer: bytes,
        send: FrameCipher,
        recv: FrameCipher,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_recv: int | None = None,
        stranger: bool = False,
    ) -> None:
        _check_max_frame(max_frame)
        self.peer = peer
        self.stranger = stranger
        """The peer is not a member: it may only ask to be admitted (see :func:`respond`)."""
        self._max_recv = max_frame if max_recv is None else max_recv
        self._send = send
        self._recv = recv
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._error: DropReason | None = None

    @property
    def max_frame(self) -> int:
        return self._max_frame

    @property
    def max_payload(self) -> int:
        """Largest payload one frame carries under this session's ``max_frame``."""
        return self._max_frame - FRAME_MAC

    @property
    def error(self) -> DropReason | None:
        """Why the session is poisoned, or None."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet decoded."""
        return len(self._buffer)

    def seal_frame(self, payload: bytes) -> bytes:
        """The bytes to write for one frame carrying ``payload``.

        Raises :class:`~mesh.errors.LocalProtocolError` above :attr:`max_payload` (the
        peer is assumed to use the same ``max_frame``).
        """
        if len(payload) > self.max_payload:
            raise LocalProtocolError(
                f"frame payload of {len(payload)} bytes; at most {self.max_payload}"
            )
        body = self._send.seal(payload)
        return len(body).to_bytes(FRAME_PREFIX, "big") + body

    def feed(self, data: bytes) -> None:
        """Add bytes read from the stream (ignored once the session is poisoned)."""
        if self._error is not None:
            return
        self._buffer += data
        self._check_prefix()

    def _poison(self, reason: DropReason) -> DropReason:
        self._error = reason
        self._buffer = bytearray()
        return reason

    def _check_prefix(self) -> int | None:
        """The pending frame's body length; poisons the session on a bad prefix."""
        if len(self._buffer) < FRAME_PREFIX:
            return None
        length = int.from_bytes(self._buffer[:FRAME_PREFIX], "big")
        if length > self._max_recv:
            self._poison(DropReason.OVERSIZED)
            return None
        if length < FRAME_MAC:
            self._poison(DropReason.MALFORMED)
            return None
        return length

    def next_frame(self) -> bytes | DropReason | None:
        """The next payload, None if more bytes are needed, or why the stream is bad."""
        if self._error is not None:
            return self._error
        length = self._check_prefix()
        if self._error is not None:
            return self._error
        if length is None or len(self._buffer) < FRAME_PREFIX + length:
            return None
        end = FRAME_PREFIX + length
        body = bytes(self._buffer[FRAME_PREFIX:end])
        del self._buffer[:end]
        payload = self._recv.open(body)
        if payload is None:
            return self._poison(DropReason.BAD_MAC)
        return payload


class Initiator:
    """The dialling side of a handshake: :meth:`hello`, then :meth:`finish` with the reply.

    ``random_source(n)`` gives the ephemeral secret; simulations inject a seeded one.
    One object serves one handshake: :meth:`finish` may be called once.
    """

    __slots__ = ("_eph", "_finished", "_identity", "_max_frame", "_mesh_id")

    def __init__(
        self,
        identity: Identity,
        mesh_id: bytes,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        random_source: Callable[[int], bytes] = nacl.utils.random,
    ) -> None:
        self._mesh_id = _check_mesh_id(mesh_id)
        _check_max_frame(max_frame)
        self._identity = identity
        self._max_frame = max_frame
        self._eph: _Ephemeral | None = _Ephemeral(random_source)
        self._finished = False

    @property
    def reply_length(self) -> int:
        """Bytes to read for the reply (:data:`REPLY_LENGTH`)."""
        return REPLY_LENGTH

    def _ephemeral(self) -> _Ephemeral:
        if self._finished or self._eph is None:
            raise LocalProtocolError("this handshake is finished: start a new Initiator")
        return self._eph

    def hello(self) -> bytes:
        """The hello to write first."""
        eph = self._ephemeral()
        mesh_id = self._mesh_id
        signature = self._identity.sign(HELLO_CONTEXT + mesh_id + eph.public)
        return (
            bytes((VERSION, len(mesh_id)))
            + mesh_id
            + self._identity.public_key
            + eph.public
            + signature
        )

    def finish(
        self, reply: bytes, is_member: IsMember, expected_peer: bytes | None = None
    ) -> Session | DropReason:
        """Check the responder's reply; the session, or why the stream must be closed.

        ``expected_peer`` is the member this node meant to dial, if it knows it: a reply
        signed by anyone else is refused (``NOT_MEMBER``: not the member dialled).
        """
        eph = self._ephemeral()
        self._finished = True
        self._eph = None
        reply = bytes(reply)
        if len(reply) < REPLY_LENGTH:
            return DropReason.TRUNCATED
        if len(reply) > REPLY_LENGTH:
            return DropReason.MALFORMED
        if reply[0] != VERSION:
            return DropReason.BAD_VERSION
        r_static = reply[1 : 1 + PUBLIC_KEY_LEN]
        r_eph = reply[1 + PUBLIC_KEY_LEN : 1 + PUBLIC_KEY_LEN + EPH_LEN]
        signature = reply[1 + PUBLIC_KEY_LEN + EPH_LEN :]
        i_static = self._identity.public_key
        if r_static == i_static:
            return DropReason.SELF
        if expected_peer is not None and r_static != expected_peer:
            return DropReason.NOT_MEMBER
        if not is_member(r_static):
            return DropReason.NOT_MEMBER
        signed = REPLY_CONTEXT + self._mesh_id + eph.public + r_eph + i_static
        if not verify(r_static, signed, signature):
            return DropReason.BAD_SIGNATURE
        keys = _session_keys(
            eph.secret, r_eph, self._mesh_id, eph.public, r_eph, i_static, r_static
        )
        if keys is None:
            return DropReason.MALFORMED
        i2r, r2i = keys
        return Session(r_static, FrameCipher(i2r), FrameCipher(r2i), max_frame=self._max_frame)


def respond(
    identity: Identity,
    mesh_id: bytes,
    hello: bytes,
    is_member: IsMember,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    random_source: Callable[[int], bytes] = nacl.utils.random,
    stranger_max_recv: int = 0,
) -> tuple[Session, bytes] | DropReason:
    """Check an initiator's hello; the session and the reply to write, or why to close.

    A non-member is refused (``NOT_MEMBER``) unless ``stranger_max_recv`` is set: then
    its session is marked :attr:`Session.stranger` and the frames it may send are capped
    at that size, for a node that accepts admission requests. Raises only for a bad
    ``mesh_id``/``max_frame`` of the caller's own; never on ``hello``.
    """
    mesh_id = _check_mesh_id(mesh_id)
    _check_max_frame(max_frame)
    if stranger_max_recv:
        _check_max_frame(stranger_max_recv)
    hello = bytes(hello)
    if len(hello) < HELLO_PREFIX_LENGTH:
        return DropReason.TRUNCATED
    if hello[0] != VERSION:
        return DropReason.BAD_VERSION
    size = len(mesh_id)
    if hello[1] != size:
        return DropReason.WRONG_MESH
    if len(hello) < HELLO_PREFIX_LENGTH + size:
        return DropReason.TRUNCATED
    if hello[HELLO_PREFIX_LENGTH : HELLO_PREFIX_LENGTH + size] != mesh_id:
        return DropReason.WRONG_MESH
    expected = hello_length(mesh_id)
    if len(hello) < expected:
        return DropReason.TRUNCATED
    if len(hello) > expected:
        return DropReason.MALFORMED
    at = HELLO_PREFIX_LENGTH + size
    i_static = hello[at : at + PUBLIC_KEY_LEN]
    i_eph = hello[at + PUBLIC_KEY_LEN : at + PUBLIC_KEY_LEN + EPH_LEN]
    signature = hello[at + PUBLIC_KEY_LEN + EPH_LEN :]
    r_static = identity.public_key
    if i_static == r_static:
        return DropReason.SELF
    stranger = not is_member(i_static)
    if stranger and not stranger_max_recv:
        return DropReason.NOT_MEMBER
    if not verify(i_static, HELLO_CONTEXT + mesh_id + i_eph, signature):
        return DropReason.BAD_SIGNATURE
    eph = _Ephemeral(random_source)
    keys = _session_keys(eph.secret, i_eph, mesh_id, i_eph, eph.public, i_static, r_static)
    if keys is None:
        return DropReason.MALFORMED
    i2r, r2i = keys
    signature = identity.sign(REPLY_CONTEXT + mesh_id + i_eph + eph.public + i_static)
    reply = bytes((VERSION,)) + r_static + eph.public + signature
    session = Session(
        i_static,
        FrameCipher(r2i),
        FrameCipher(i2r),
        max_frame=max_frame,
        max_recv=stranger_max_recv if stranger else max_frame,
        stranger=stranger,
    )
    return session, reply
