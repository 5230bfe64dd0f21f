"""Messages and their msgpack encoding.

Every message is a msgpack array whose first element is its :class:`MsgType`. A datagram's
(sealed) payload is a msgpack array of messages - a compound - filled up to the MTU.
TCP frames carry exactly one message. docs/protocol.md describes every field.

Decoding is strict about types and sizes and never raises on hostile bytes: it returns a
:class:`~mesh.errors.DropReason`. Unknown message types inside a compound are skipped
(a newer peer may speak them) and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from mesh.config import META_MAX
from mesh.errors import DropReason
from mesh.member import Address, Member, MemberState

KEY_LEN = 32
ID_LEN = 8
"""Bytes of a broadcast id: random, remembered for ``broadcast_dedup`` seconds."""
MAX_HOST = 255
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1


class MsgType(IntEnum):
    """Message types. ONLY APPEND TO THIS LIST: the numbers are the wire format."""

    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    SUSPECT = 5
    ALIVE = 6
    DEAD = 7
    USER = 8
    PUSH_PULL = 9
    USER_STREAM = 10
    PUSH_PULL_FINAL = 11
    ADMIT_REQUEST = 12
    ADMIT_REPLY = 13
    QUERY = 14
    QUERY_REPLY = 15


class QueryStatus(IntEnum):
    """How a QUERY_REPLY answers. ONLY APPEND: the numbers are the wire format."""

    ANSWERED = 0
    REFUSED = 1
    BUSY = 2


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you alive? ``target`` guards against a different node now at the address."""

    seq: int
    target: bytes


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Please probe ``target`` at ``addr`` for me and relay its ACK (or a NACK)."""

    seq: int
    target: bytes
    addr: Address
    nack: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """Reply to a (relayed) ping."""

    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """Lifeguard: the relay could not reach the target (so the relay itself works)."""

    seq: int


@dataclass(frozen=True, slots=True)
class Suspect:
    """``sender`` suspects ``node`` at ``incarnation``."""

    incarnation: int
    node: bytes
    sender: bytes


@dataclass(frozen=True, slots=True)
class Alive:
    """``node`` is alive at ``incarnation`` with this address and metadata."""

    incarnation: int
    node: bytes
    addr: Address
    meta: bytes


@dataclass(frozen=True, slots=True)
class Dead:
    """``sender`` declares ``node`` dead; when sender == node, it left gracefully."""

    incarnation: int
    node: bytes
    sender: bytes


@dataclass(frozen=True, slots=True)
class User:
    """An application broadcast, delivered once per ``id`` on every node of its audience.

    An empty ``origin`` means the sender of the datagram (or stream) created it.

    ``topic`` names the audience (empty: every member); it is encoded as a trailing
    fifth field only when non-empty, so a broadcast to everyone is unchanged on the wire.
    """

    id: bytes
    origin: bytes
    payload: bytes
    topic: str = ""


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """One row of a member table in a state exchange."""

    key: bytes
    addr: Address
    incarnation: int
    state: MemberState
    meta: bytes


@dataclass(frozen=True, slots=True)
class PushPull:
    """Anti-entropy over TCP: the sender's member table and an application payload."""

    join: bool
    members: Sequence[MemberEntry | Member]
    app: bytes


@dataclass(frozen=True, slots=True)
class UserStream:
    """An application broadcast too large for a datagram, carried over TCP."""

    id: bytes
    origin: bytes
    payload: bytes
    topic: str = ""


@dataclass(frozen=True, slots=True)
class PushPullFinal:
    """The initiator's last application leg of a state exchange."""

    app: bytes


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    """A non-member asks to be admitted (TCP only, the one frame a stranger may send);
    ``app`` is for the delegate (e.g. a join token's secret)."""

    app: bytes


@dataclass(frozen=True, slots=True)
class AdmitReply:
    """The answer to an admission request (e.g. the trust records and the state)."""

    app: bytes


@dataclass(frozen=True, slots=True)
class Query:
    """A member asks another member something (TCP only); ``app`` is for the answerer."""

    app: bytes


@dataclass(frozen=True, slots=True)
class QueryReply:
    """The answer to a query: ``app`` when ``status`` is ANSWERED, else empty."""

    status: QueryStatus
    app: bytes


Message = (
    Ping
    | IndirectPing
    | Ack
    | Nack
    | Suspect
    | Alive
    | Dead
    | User
    | PushPull
    | UserStream
    | PushPullFinal
    | AdmitRequest
    | AdmitReply
    | Query
    | QueryReply
)


def _fields(msg: Message) -> list[Any]:
    match msg:
        case Ping(seq, target):
            return [MsgType.PING, seq, target]
        case IndirectPing(seq, target, (host, port), nack):
            return [MsgType.INDIRECT_PING, seq, target, host, port, nack]
        case Ack(seq):
            return [MsgType.ACK, seq]
        case Nack(seq):
            return [MsgType.NACK, seq]
        case Suspect(inc, node, sender):
            return [MsgType.SUSPECT, inc, node, sender]
        case Alive(inc, node, (host, port), meta):
            return [MsgType.ALIVE, inc, node, host, port, meta]
        case Dead(inc, node, sender):
            return [MsgType.DEAD, inc, node, sender]
        case User(id_, origin, payload, topic):
            return [MsgType.USER, id_, origin, payload, *_topic_field(topic)]
        case PushPull(join, members, app):
            rows = [
                [m.key, m.addr[0], m.addr[1], m.incarnation, int(m.state), m.meta] for m in members
            ]
            return [MsgType.PUSH_PULL, join, rows, app]
        case UserStream(id_, origin, payload, topic):
            return [MsgType.USER_STREAM, id_, origin, payload, *_topic_field(topic)]
        case PushPullFinal(app):
            return [MsgType.PUSH_PULL_FINAL, app]
        case AdmitRequest(app):
            return [MsgType.ADMIT_REQUEST, app]
        case AdmitReply(app):
            return [MsgType.ADMIT_REPLY, app]
        case Query(app):
            return [MsgType.QUERY, app]
        case QueryReply(status, app):
            return [MsgType.QUERY_REPLY, int(status), app]
    raise TypeError(f"not a message: {msg!r}")  # pragma: no cover - exhaustive match


def encode(msg: Message) -> bytes:
    """One message as msgpack bytes."""
    return msgpack.packb(_fields(msg), use_bin_type=True)


def compound(encoded: Sequence[bytes]) -> bytes:
    """A datagram payload holding the already-encoded messages."""
    n = len(encoded)
    if n < 16:
        header = bytes([0x90 | n])
    elif n < 2**16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        raise ValueError("too many messages for one datagram")
    return header + b"".join(encoded)


COMPOUND_HEADER_MAX = 3
"""Bytes the compound's array header may take."""

USER_ENVELOPE = 1 + 1 + (2 + ID_LEN) + 2 + 3
"""Bytes a first-hand USER message adds to a payload under 64 KiB: array header, type,
id, the empty origin and the payload's bin header (plus :func:`topic_overhead` for a
topic). A relayed copy carries the origin: :data:`KEY_LEN` more bytes, so a payload at
the very limit is relayed over TCP."""

MAX_TOPIC = 128
"""Longest broadcast topic, in characters (a topic is ASCII in practice)."""


def _topic_field(topic: str) -> list[str]:
    return [topic] if topic else []


def topic_overhead(topic: str) -> int:
    """Bytes a topic adds to a USER message (its msgpack str, header included)."""
    if not topic:
        return 0
    n = len(topic.encode())
    return n + (1 if n < 32 else 2)


# --- decoding ------------------------------------------------------------------------


class _Bad(Exception):
    """Internal: the message is malformed."""


def _key(v: Any) -> bytes:
    if type(v) is not bytes or len(v) != KEY_LEN:
        raise _Bad
    return v


def _uint(v: Any, limit: int) -> int:
    if type(v) is not int or not 0 <= v <= limit:
        raise _Bad
    return v


def _bytes(v: Any, limit: int) -> bytes:
    if type(v) is not bytes or len(v) > limit:
        raise _Bad
    return v


def _addr(host: Any, port: Any) -> Address:
    if type(host) is not str or not 0 < len(host) <= MAX_HOST or not host.isprintable():
        raise _Bad
    return host, _uint(port, 65535)


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _Bad
    return v


_STATES = tuple(MemberState)


def _entry(row: Any) -> MemberEntry:
    # The hot path of a large state exchange: checks inlined.
    if type(row) is not list or len(row) < 6:
        raise _Bad
    key, host, port, inc, state, meta = row[:6]
    if (
        type(key) is not bytes
        or len(key) != KEY_LEN
        or type(inc) is not int
        or not 0 <= inc <= MAX_U64
        or type(state) is not int
        or not 0 <= state < len(_STATES)
        or type(meta) is not bytes
        or len(meta) > META_MAX
    ):
        raise _Bad
    return MemberEntry(key, _addr(host, port), inc, _STATES[state], meta)


def _ping(f: list[Any], _: int) -> Message:
    return Ping(_uint(f[1], MAX_U32), _key(f[2]))


def _indirect_ping(f: list[Any], _: int) -> Message:
    return IndirectPing(_uint(f[1], MAX_U32), _key(f[2]), _addr(f[3], f[4]), _bool(f[5]))


def _ack(f: list[Any], _: int) -> Message:
    return Ack(_uint(f[1], MAX_U32))


def _nack(f: list[Any], _: int) -> Message:
    return Nack(_uint(f[1], MAX_U32))


def _suspect(f: list[Any], _: int) -> Message:
    return Suspect(_uint(f[1], MAX_U64), _key(f[2]), _key(f[3]))


def _alive(f: list[Any], _: int) -> Message:
    return Alive(_uint(f[1], MAX_U64), _key(f[2]), _addr(f[3], f[4]), _bytes(f[5], META_MAX))


def _dead(f: list[Any], _: int) -> Message:
    return Dead(_uint(f[1], MAX_U64), _key(f[2]), _key(f[3]))


def _id(v: Any) -> bytes:
    if type(v) is not bytes or len(v) != ID_LEN:
        raise _Bad
    return v


def _topic(f: list[Any]) -> str:
    if len(f) < 5:
        return ""
    v = f[4]
    if type(v) is not str or not 0 < len(v) <= MAX_TOPIC:
        raise _Bad
    return v


def _origin(v: Any) -> bytes:
    # Empty: the broadcast's creator is the node that sent it (saves 32 bytes first-hand).
    return v if type(v) is bytes and not v else _key(v)


def _user(f: list[Any], max_payload: int) -> Message:
    return User(_id(f[1]), _origin(f[2]), _bytes(f[3], max_payload), _topic(f))


def _push_pull(f: list[Any], max_payload: int) -> Message:
    if type(f[2]) is not list:
        raise _Bad
    members = tuple([_entry(row) for row in f[2]])
    return PushPull(_bool(f[1]), members, _bytes(f[3], max_payload))


def _user_stream(f: list[Any], max_payload: int) -> Message:
    return UserStream(_id(f[1]), _origin(f[2]), _bytes(f[3], max_payload), _topic(f))


def _push_pull_final(f: list[Any], max_payload: int) -> Message:
    return PushPullFinal(_bytes(f[1], max_payload))


def _admit_request(f: list[Any], max_payload: int) -> Message:
    return AdmitRequest(_bytes(f[1], max_payload))


def _admit_reply(f: list[Any], max_payload: int) -> Message:
    return AdmitReply(_bytes(f[1], max_payload))


def _query(f: list[Any], max_payload: int) -> Message:
    return Query(_bytes(f[1], max_payload))


_QUERY_STATUSES = tuple(QueryStatus)


def _query_reply(f: list[Any], max_payload: int) -> Message:
    status = f[1]
    if type(status) is not int or not 0 <= status < len(_QUERY_STATUSES):
        raise _Bad
    return QueryReply(_QUERY_STATUSES[status], _bytes(f[2], max_payload))


_DECODERS: dict[int, tuple[int, Callable[[list[Any], int], Message]]] = {
    # type: (fields needed, decoder)
    MsgType.PING: (3, _ping),
    MsgType.INDIRECT_PING: (6, _indirect_ping),
    MsgType.ACK: (2, _ack),
    MsgType.NACK: (2, _nack),
    MsgType.SUSPECT: (4, _suspect),
    MsgType.ALIVE: (6, _alive),
    MsgType.DEAD: (4, _dead),
    MsgType.USER: (4, _user),
    MsgType.PUSH_PULL: (4, _push_pull),
    MsgType.USER_STREAM: (4, _user_stream),
    MsgType.PUSH_PULL_FINAL: (2, _push_pull_final),
    MsgType.ADMIT_REQUEST: (2, _admit_request),
    MsgType.ADMIT_REPLY: (2, _admit_reply),
    MsgType.QUERY: (2, _query),
    MsgType.QUERY_REPLY: (3, _query_reply),
}


def _message(f: list[Any], max_payload: int) -> Message | None:
    """Build a message from a decoded array; None for a type this version does not know.
    Trailing extra fields are ignored (a newer version may append fields)."""
    kind = f[0] if f else None
    if type(kind) is not int:
        raise _Bad
    entry = _DECODERS.get(kind)
    if entry is None:
        return None
    needed, decode = entry
    if len(f) < needed:
        raise _Bad  # a known type with too few fields
    return decode(f, max_payload)


def _unpack(data: bytes) -> Any:
    # Hostile input: bound every container; msgpack raises on anything else.
    limit = len(data)
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        max_bin_len=limit,
        max_str_len=min(limit, 4096),
        max_array_len=limit,
        max_map_len=0,
        max_ext_len=0,
    )


@dataclass(frozen=True, slots=True)
class Decoded:
    """The messages of one datagram, and how many of unknown type were skipped."""

    messages: tuple[Message, ...]
    unknown: int


def decode_compound(data: bytes, max_payload: int = 65535) -> Decoded | DropReason:
    """Decode a datagram's payload (a compound of messages)."""
    try:
        items = _unpack(data)
        if type(items) is not list or not items:
            return DropReason.MALFORMED
        out: list[Message] = []
        unknown = 0
        for item in items:
            if type(item) is not list:
                return DropReason.MALFORMED
            msg = _message(item, max_payload)
            if msg is None:
                unknown += 1
            else:
                out.append(msg)
        return Decoded(tuple(out), unknown)
    except (_Bad, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, RecursionError):  # fmt: skip
        return DropReason.MALFORMED


def frame_type(data: bytes) -> int | None:
    """The type number of the message a TCP frame holds, read without decoding the rest
    (None when the frame does not start like a message)."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1))
    unpacker.feed(data[:16])  # an array header (<= 5 bytes) and an int (<= 9 bytes)
    try:
        if unpacker.read_array_header() < 1:
            return None
        kind = unpacker.unpack()
    except (ValueError, TypeError, msgpack.OutOfData, msgpack.FormatError, msgpack.StackError):
        return None
    return kind if type(kind) is int else None


def decode_one(data: bytes, max_payload: int) -> Message | DropReason:
    """Decode a TCP frame: exactly one message."""
    try:
        item = _unpack(data)
        msg = _message(item, max_payload) if type(item) is list else None
    except (_Bad, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, RecursionError):  # fmt: skip
        return DropReason.MALFORMED
    if type(item) is not list:
        return DropReason.MALFORMED
    return DropReason.UNKNOWN_TYPE if msg is None else msg
