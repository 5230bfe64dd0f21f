"""Reading the few parts of the Yjs v1 binary format that pycrdt does not expose.

- A *state vector*: varuint count, then (client, clock) varuint pairs.
- The *delete set* at the end of an update: varuint client count, then per client its
  varuint id, a varuint range count and (clock, length) varuint pairs.

Two replicas with equal state vectors can still differ: a deletion adds no clock. The
delete set closes that gap; Yrs encodes it from a hash map, so its byte order differs
between replicas and it is compared decoded (:func:`delete_set`, :func:`digest`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pycrdt import Doc

__all__ = ["decode_state_vector", "delete_set", "digest", "lacks"]

DeleteSet = dict[int, list[tuple[int, int]]]


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def varuint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise ValueError(f"malformed {self.what}")
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value


def decode_state_vector(state: bytes) -> dict[int, int]:
    """A state vector as {client: clock}; :class:`ValueError` when malformed."""
    reader = _Reader(state, "state vector")
    out: dict[int, int] = {}
    for _ in range(reader.varuint()):
        client = reader.varuint()
        out[client] = reader.varuint()
    return out


def delete_set(doc: Doc[Any]) -> DeleteSet:
    """The document's delete set: {client: sorted, merged (clock, length) ranges}."""
    data = doc.get_update(doc.get_state())  # no structs, then the whole delete set
    reader = _Reader(data, "update")
    if reader.varuint() != 0:
        raise ValueError("a document's update for its own state carries structs")
    out: DeleteSet = {}
    for _ in range(reader.varuint()):
        client = reader.varuint()
        ranges = sorted((reader.varuint(), reader.varuint()) for _ in range(reader.varuint()))
        merged: list[tuple[int, int]] = []
        for clock, length in ranges:
            if merged and clock <= merged[-1][0] + merged[-1][1]:
                start, prev = merged[-1]
                merged[-1] = (start, max(prev, clock + length - start))
            else:
                merged.append((clock, length))
        if merged:
            out[client] = merged
    return out


def digest(doc: Doc[Any]) -> bytes:
    """8 bytes that differ (with overwhelming probability) between replicas whose delete
    sets differ; equal for equal delete sets whatever their encoded order."""
    h = hashlib.blake2b(digest_size=8, person=b"nxmesh-ds-v1")
    for client, ranges in sorted(delete_set(doc).items()):
        h.update(client.to_bytes(8, "big"))
        for clock, length in ranges:
            h.update(clock.to_bytes(8, "big") + length.to_bytes(8, "big"))
        h.update(b"\xff" * 8)
    return h.digest()


def lacks(theirs: dict[int, int], ours: dict[int, int]) -> bool:
    """Whether a peer with state vector ``theirs`` lacks any struct we have."""
    return any(theirs.get(client, 0) < clock for client, clock in ours.items())
