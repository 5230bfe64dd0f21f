"""Errors, and why things are dropped.

As in h11, whose fault it is decides the kind: a caller misusing the API gets a
:class:`LocalProtocolError`; anything a peer sends that is wrong is a *drop* - counted
under a :class:`DropReason`, never raised out of the core or the driver.
"""

from __future__ import annotations

from enum import StrEnum


class MeshError(Exception):
    """Base of the errors mesh/ raises to its caller."""


class LocalProtocolError(MeshError):
    """The caller asked for something the protocol cannot do."""


class MetaTooLarge(LocalProtocolError):
    """Member metadata over the limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"member metadata is {size} bytes; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


class DropReason(StrEnum):
    """Why an incoming datagram, frame or message was dropped (a metrics label)."""

    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    BAD_VERSION = "bad_version"
    MALFORMED = "malformed"
    NOT_MEMBER = "not_member"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"
    SELF = "self"
    WRONG_MESH = "wrong_mesh"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_TYPE = "unknown_type"
    UNEXPECTED = "unexpected"
    TIMEOUT = "timeout"
    BUSY = "busy"
