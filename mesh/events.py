"""What the core tells its owner: small frozen records (as h11's events)."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.member import Member


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member was seen alive for the first time (or again after it was dead/left)."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """A member's address or metadata changed (its incarnation went up)."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    """A member failed a probe and is suspected; it is dead if it does not refute."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberAlive:
    """A suspected member refuted the suspicion."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberDead:
    """A member was declared dead."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member left gracefully."""

    member: Member


@dataclass(frozen=True, slots=True)
class BroadcastDelivered:
    """An application broadcast reached this node (delivered once per id)."""

    origin: bytes
    broadcast_id: bytes
    payload: bytes
    topic: str = ""
    """The audience it was sent to; empty for every member."""


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    """A member was removed because its membership was revoked (see MeshCore.forget)."""

    member: Member


MemberEvent = (
    MemberJoined
    | MemberUpdated
    | MemberSuspect
    | MemberAlive
    | MemberDead
    | MemberLeft
    | MemberRemoved
)
Event = MemberEvent | BroadcastDelivered
