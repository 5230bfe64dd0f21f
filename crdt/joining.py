"""Joining a mesh with a token: what the seed checks and writes, what the joiner verifies.

The exchange rides mesh/'s admission request (:func:`mesh.request_admission`), the one
exchange a non-member may have:

1. The joiner sends a :class:`JoinRequest` (the token's invite id and secret, its name).
2. The seed (:func:`answer_join`) refuses with a one-line reason - unknown, expired,
   used-up or forged invite, a revoked key, a bad name - or writes, in one durable
   transaction of the mesh document, the redeemed invite, an admission of the joiner's
   key signed by the seed, and the joiner's ``*`` assignment; then answers with the
   whole mesh document (compressed). The seed broadcasts that update as for any edit.
3. The joiner (:func:`verify_answer`) trusts nothing in the answer until it checks it
   against the token: the genesis record must be the token's (mesh id and genesis key),
   and under the trust rules both the answering seed and the joiner itself must be
   members. Only then does it store the document.

A revoked key stays revoked (:class:`crdt.trust.TrustVerifier`), so a revoked node cannot
come back with its old key: the seed refuses it before spending the invite.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from pycrdt import Doc, Map

from crdt.membership import ALL_WORKSPACES, ASSIGNMENTS, TRUST, MeshState, assignment_key
from crdt.store import StoreError
from crdt.trust import (
    INVITE_ID_LEN,
    SECRET_LEN,
    Admission,
    Genesis,
    InviteError,
    RecordError,
    Token,
    TrustVerifier,
    pack_record,
    parse_record,
    redeemed,
)
from mesh import Identity, fingerprint

__all__ = [
    "JoinRefused",
    "JoinRequest",
    "Joined",
    "answer_join",
    "check_node_name",
    "verify_answer",
]

_NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_ANSWER = 64 * 1024 * 1024
"""Largest decompressed mesh document a joiner accepts."""
_VERSION = 1


class JoinRefused(Exception):
    """The join cannot go ahead; the message is one line for the operator."""


def check_node_name(name: str) -> str:
    """A node name: a lowercase DNS label (1-63 of ``a-z 0-9 -``, no leading/trailing
    dash). :class:`ValueError` with the reason otherwise."""
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise ValueError(
            f"invalid node name {name!r}: use 1-63 lowercase letters, digits and '-' "
            "(not first or last)"
        )
    return name


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """What the joiner sends in its admission request."""

    invite_id: bytes
    secret: bytes
    name: str

    @classmethod
    def of(cls, token: Token, name: str) -> JoinRequest:
        return cls(token.invite_id, token.secret, check_node_name(name))

    def pack(self) -> bytes:
        return msgpack.packb([_VERSION, self.invite_id, self.secret, self.name], use_bin_type=True)

    @classmethod
    def unpack(cls, data: bytes) -> JoinRequest:
        """:class:`JoinRefused` when the request is malformed."""
        fields = _unpack(data)
        if (
            not isinstance(fields, list)
            or len(fields) < 4
            or fields[0] != _VERSION
            or not isinstance(fields[1], bytes)
            or len(fields[1]) != INVITE_ID_LEN
            or not isinstance(fields[2], bytes)
            or len(fields[2]) != SECRET_LEN
            or not isinstance(fields[3], str)
        ):
            raise JoinRefused("malformed join request")
        try:
            name = check_node_name(fields[3])
        except ValueError as exc:
            raise JoinRefused(str(exc)) from None
        return cls(fields[1], fields[2], name)


def answer_join(
    state: MeshState,
    identity: Identity,
    peer: bytes,
    request: bytes,
    now: int,
    publish: Callable[[bytes], None],
) -> bytes:
    """The seed's answer to a join request (always an answer: acceptance or refusal).

    On acceptance the mesh document is updated durably before answering, and
    ``publish(update)`` is called to broadcast it.
    """
    try:
        update = _admit(state, identity, peer, JoinRequest.unpack(request), now)
    except JoinRefused as exc:
        return msgpack.packb({"v": _VERSION, "refused": str(exc)}, use_bin_type=True)
    except StoreError as exc:
        # This seed cannot store the admission (disk full, read-only): refuse with the
        # reason rather than raise into mesh/ (which stops the daemon). Nothing was
        # written and the invite is not spent.
        refused = f"the seed cannot store the admission: {exc}"
        return msgpack.packb({"v": _VERSION, "refused": refused}, use_bin_type=True)
    publish(update)
    full = zlib.compress(state.persisted.doc.get_update(), 6)
    return msgpack.packb({"v": _VERSION, "mesh": full}, use_bin_type=True)


def _admit(
    state: MeshState, identity: Identity, peer: bytes, request: JoinRequest, now: int
) -> bytes:
    if state.is_member(peer):  # also brings state.verifier up to date
        raise JoinRefused(f"the key {fingerprint(peer)} is already a member")
    verifier = state.verifier
    if peer in verifier.revoked:
        raise JoinRefused(f"the key {fingerprint(peer)} was revoked and cannot join again")
    token = Token(verifier.mesh_id, verifier.genesis.key, ("-",), request.invite_id, request.secret)
    try:
        invite = verifier.check_token(token, now)
        used = redeemed(invite)
    except InviteError as exc:
        raise JoinRefused(str(exc)) from None
    admission = Admission.create(
        identity, peer, request.name, mesh_id=verifier.mesh_id, now=now, invite_id=invite.id
    )
    records = [(used.record_id, pack_record(used)), (admission.record_id, pack_record(admission))]
    key = assignment_key(peer, ALL_WORKSPACES)

    def write(doc: Doc[Any]) -> None:
        trust = doc.get(TRUST, type=Map)
        for record_id, data in records:
            trust[record_id] = data
        doc.get(ASSIGNMENTS, type=Map)[key] = True

    update = state.persisted.commit(write)
    if update is None or not state.is_member(peer):
        raise JoinRefused("the admission did not take (the seed's trust records disagree)")
    return update


@dataclass(frozen=True, slots=True)
class Joined:
    """A verified answer: the mesh's genesis and the mesh document to store."""

    genesis: Genesis
    mesh_update: bytes
    members: frozenset[bytes]


def verify_answer(token: Token, own_key: bytes, responder: bytes, answer: bytes) -> Joined:
    """Check a seed's answer against the token; :class:`JoinRefused` with the reason."""
    message = _unpack(answer)
    if not isinstance(message, dict) or message.get("v") != _VERSION:
        raise JoinRefused("the seed sent an answer this version does not understand")
    refused = message.get("refused")
    if isinstance(refused, str):
        raise JoinRefused(f"the seed refused: {refused}")
    blob = message.get("mesh")
    if not isinstance(blob, bytes):
        raise JoinRefused("the seed's answer carries no mesh document")
    update = _inflate(blob)
    doc: Doc[Any] = Doc()
    try:
        doc.apply_update(update)
    except (ValueError, RuntimeError):
        raise JoinRefused("the seed's mesh document does not decode") from None
    genesis: Genesis | None = None
    records: list[Any] = []
    for _, value in doc.get(TRUST, type=Map).items():
        if not isinstance(value, bytes | bytearray):
            continue
        try:
            record = parse_record(bytes(value))
        except RecordError:
            continue
        if (
            isinstance(record, Genesis)
            and record.mesh_id == token.mesh_id
            and record.key == token.genesis_key
            and record.is_signed()
        ):
            genesis = record
        records.append(record)
    if genesis is None:
        raise JoinRefused(
            "the seed's answer does not hold this token's genesis record "
            f"({token.genesis_fingerprint}): wrong mesh or forged"
        )
    verifier = TrustVerifier(genesis, records)
    if responder not in verifier.members:
        raise JoinRefused(
            f"the answering node {fingerprint(responder)} is not a member of this mesh"
        )
    if own_key not in verifier.members:
        raise JoinRefused("the seed's answer does not admit this node")
    return Joined(genesis, update, verifier.members)


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def _inflate(blob: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(blob, MAX_ANSWER)
    except zlib.error:
        raise JoinRefused("the seed's mesh document is damaged") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise JoinRefused("the seed's mesh document is too large or truncated")
    return out
