"""Message encoding: round trips, forward compatibility, and hostile bytes."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh import wire
from mesh.errors import DropReason
from mesh.member import Member, MemberState

keys = st.binary(min_size=32, max_size=32)
ids = st.binary(min_size=wire.ID_LEN, max_size=wire.ID_LEN)
origins = st.one_of(st.just(b""), keys)
u32 = st.integers(0, wire.MAX_U32)
u64 = st.integers(0, wire.MAX_U64)
hosts = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=255
)
addrs = st.tuples(hosts, st.integers(0, 65535))
metas = st.binary(max_size=512)
entries = st.builds(wire.MemberEntry, keys, addrs, u64, st.sampled_from(MemberState), metas)

messages = st.one_of(
    st.builds(wire.Ping, u32, keys),
    st.builds(wire.IndirectPing, u32, keys, addrs, st.booleans()),
    st.builds(wire.Ack, u32),
    st.builds(wire.Nack, u32),
    st.builds(wire.Suspect, u64, keys, keys),
    st.builds(wire.Alive, u64, keys, addrs, metas),
    st.builds(wire.Dead, u64, keys, keys),
    st.builds(wire.User, ids, origins, st.binary(max_size=2000)),
    st.builds(wire.PushPull, st.booleans(), st.lists(entries, max_size=5).map(tuple), st.binary()),
    st.builds(wire.UserStream, ids, origins, st.binary(max_size=2000)),
    st.builds(wire.PushPullFinal, st.binary()),
    st.builds(wire.AdmitRequest, st.binary()),
    st.builds(wire.AdmitReply, st.binary()),
    st.builds(wire.Query, st.binary()),
    st.builds(wire.QueryReply, st.sampled_from(wire.QueryStatus), st.binary()),
)


@given(messages)
def test_every_message_round_trips_as_a_frame(msg: wire.Message) -> None:
    assert wire.decode_one(wire.encode(msg), 1 << 20) == msg


@given(st.lists(messages, min_size=1, max_size=20))
def test_a_compound_round_trips(msgs: list[wire.Message]) -> None:
    decoded = wire.decode_compound(wire.compound([wire.encode(m) for m in msgs]), 1 << 20)
    assert isinstance(decoded, wire.Decoded)
    assert list(decoded.messages) == msgs
    assert decoded.unknown == 0


def test_a_push_pull_encodes_member_records_directly() -> None:
    member = Member(b"k" * 32, ("10.0.0.1", 7946), 3, MemberState.SUSPECT, b"m", 12.5)
    msg = wire.decode_one(wire.encode(wire.PushPull(True, [member], b"")), 1024)
    assert isinstance(msg, wire.PushPull)
    assert msg.members == (wire.MemberEntry(member.key, member.addr, 3, MemberState.SUSPECT, b"m"),)


def test_unknown_types_are_skipped_and_trailing_fields_ignored() -> None:
    future = msgpack.packb([200, "a field from the future"])
    longer_ack = msgpack.packb([wire.MsgType.ACK, 7, "extra"])
    decoded = wire.decode_compound(wire.compound([future, longer_ack]))
    assert decoded == wire.Decoded((wire.Ack(7),), unknown=1)
    assert wire.decode_one(future, 100) is DropReason.UNKNOWN_TYPE


def test_a_known_type_with_too_few_fields_is_malformed() -> None:
    assert wire.decode_one(msgpack.packb([wire.MsgType.ALIVE, 1]), 100) is DropReason.MALFORMED


def test_constraints_are_checked() -> None:
    bad = [
        [wire.MsgType.PING, 1, b"short key"],
        [wire.MsgType.PING, -1, b"k" * 32],
        [wire.MsgType.ACK, 2**32],
        [wire.MsgType.ALIVE, 1, b"k" * 32, "h", 70000, b""],
        [wire.MsgType.ALIVE, 1, b"k" * 32, "h\n", 1, b""],
        [wire.MsgType.ALIVE, 1, b"k" * 32, "h", 1, b"x" * 513],
        [wire.MsgType.USER, b"short", b"k" * 32, b""],
        [wire.MsgType.INDIRECT_PING, 1, b"k" * 32, "h", 1, 1],
        [wire.MsgType.PUSH_PULL, False, [[b"k" * 32, "h", 1, 0, 9, b""]], b""],
        [wire.MsgType.PUSH_PULL, False, {"not": "a list"}, b""],
        [wire.MsgType.QUERY, "not bytes"],
        [wire.MsgType.QUERY_REPLY, 3, b""],
        [wire.MsgType.QUERY_REPLY, True, b""],
        [wire.MsgType.QUERY_REPLY, 0, "not bytes"],
    ]
    for fields in bad:
        assert wire.decode_one(msgpack.packb(fields), 1000) is DropReason.MALFORMED, fields
    too_big = wire.encode(wire.User(b"i" * 16, b"k" * 32, b"p" * 101))
    assert wire.decode_one(too_big, 100) is DropReason.MALFORMED


@given(messages)
def test_a_frames_type_is_read_without_decoding_it(msg: wire.Message) -> None:
    encoded = wire.encode(msg)
    assert wire.frame_type(encoded) == encoded[1]
    assert wire.frame_type(encoded[:2]) == encoded[1]


def test_frame_type_of_what_is_not_a_message_is_none() -> None:
    for data in (b"", b"\x90", b"\x80", b"\x91\xa1x", b"\xc1", msgpack.packb([True, 1])):
        assert wire.frame_type(data) is None, data
    # Any array encoding counts, as for decoding.
    assert wire.frame_type(b"\xdd\x00\x00\x00\x02\x0e\xc4\x00") == wire.MsgType.QUERY


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = wire.decode_compound(data)
    assert isinstance(result, wire.Decoded | DropReason)
    assert isinstance(wire.decode_one(data, 1000), wire.Message | DropReason)
    assert wire.frame_type(data) is None or isinstance(wire.frame_type(data), int)


@settings(max_examples=300)
@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_truncated_or_bit_flipped_compounds_never_raise(
    msgs: list[wire.Message], data: st.DataObject
) -> None:
    raw = bytearray(wire.compound([wire.encode(m) for m in msgs]))
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), max_size=4))
    for bit in flips:
        raw[bit // 8] ^= 1 << (bit % 8)
    for sample in (bytes(raw), bytes(raw[:cut])):
        assert isinstance(wire.decode_compound(sample), wire.Decoded | DropReason)


def test_deeply_nested_input_is_refused_not_a_crash() -> None:
    nested = b"\x91" * 100_000 + b"\x90"
    assert wire.decode_compound(nested) is DropReason.MALFORMED
