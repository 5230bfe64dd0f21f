"""Asking a mesh to admit this node: the one exchange a non-member may have.

A node that is not (yet) a member cannot complete a normal handshake: every node refuses
strangers. A node started with ``admissions=True`` lets a stranger finish the handshake
and send exactly one frame, an ``ADMIT_REQUEST`` of at most
:data:`~mesh.driver.ADMISSION_MAX_REQUEST` bytes, which its delegate's ``admit`` answers
(making the stranger a member) or refuses; then the stream closes. At most two such
exchanges run at once per node, each within ``stream_timeout``.

The joining side cannot check the responder against a member set it does not have yet:
:func:`request_admission` returns the responder's key with the reply, and the caller
must verify it (e.g. against trust records chained to a genesis key it already knows).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from mesh import wire
from mesh.driver import ADMISSION_MAX_REQUEST
from mesh.errors import DropReason, MeshError
from mesh.handshake import DEFAULT_MAX_FRAME, Initiator
from mesh.keys import Identity
from mesh.member import Address
from mesh.streams import open_session, read_frame

__all__ = ["AdmissionError", "Admitted", "request_admission"]


class AdmissionError(MeshError):
    """The admission exchange failed; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """The responder's answer: who answered (unverified) and its reply payload."""

    responder: bytes
    payload: bytes


async def request_admission(
    identity: Identity,
    mesh_id: bytes,
    addr: Address,
    payload: bytes,
    *,
    wait: float = 10.0,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> Admitted:
    """Send an admission request to the node at ``addr`` and wait at most ``wait``
    seconds; :class:`AdmissionError` if it cannot be reached, refuses, or answers with
    anything but an admission reply."""
    if len(payload) + 64 > ADMISSION_MAX_REQUEST:
        raise AdmissionError(f"admission request of {len(payload)} bytes is too large")
    host, port = addr
    try:
        with trio.fail_after(wait):
            return await _exchange(identity, mesh_id, host, port, payload, max_frame)
    except trio.TooSlowError:
        raise AdmissionError(f"{host}:{port} did not answer within {wait:g} s") from None
    except OSError as exc:
        raise AdmissionError(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    except trio.BrokenResourceError:
        raise AdmissionError(f"{host}:{port} reset the connection") from None


async def _exchange(
    identity: Identity, mesh_id: bytes, host: str, port: int, payload: bytes, max_frame: int
) -> Admitted:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        initiator = Initiator(identity, mesh_id, max_frame=max_frame)
        session = await open_session(stream, initiator, lambda _key: True)
        if session is None:
            raise AdmissionError(
                f"{host}:{port} closed the connection: not a node of this mesh, "
                "or it does not accept admissions"
            )
        if isinstance(session, DropReason):
            raise AdmissionError(f"{host}:{port}: handshake refused ({session})")
        await stream.send_all(session.seal_frame(wire.encode(wire.AdmitRequest(payload))))
        frame = await read_frame(stream, session)
        if frame is None:
            raise AdmissionError(f"{host}:{port} refused the admission request")
        if isinstance(frame, DropReason):
            raise AdmissionError(f"{host}:{port} sent a bad reply ({frame})")
        msg = wire.decode_one(frame, max_frame)
        if not isinstance(msg, wire.AdmitReply):
            raise AdmissionError(f"{host}:{port} did not answer with an admission reply")
        return Admitted(session.peer, msg.app)
