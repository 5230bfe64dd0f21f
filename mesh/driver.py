"""The thin trio driver around one :class:`~mesh.core.MeshCore`.

:class:`MeshNode` owns what the core must not: one UDP socket and one TCP listener bound
to the same host and port, the clock (``trio.current_time()``, so ``MockClock`` works),
the timer, and the TCP exchanges. After every input - a datagram, a timer tick, a stream
leg, a command - it *flushes* the core: datagrams go out on the UDP socket, each stream
request runs in its own task, events go to the subscribers. Every protocol decision stays
in the core.

Nothing a peer sends can raise out of the driver: the core and the handshake return
:class:`~mesh.errors.DropReason` values, counted in :attr:`MeshNode.stats` (``drops``);
socket errors are counted in :attr:`MeshNode.io`. Streams carry their own drop reasons:
``busy`` (an inbound connection over ``max_streams``, closed at once) and ``timeout`` (an
exchange that outlived ``stream_timeout``, either direction).

Queries (:meth:`MeshNode.query`, :mod:`mesh.query`) are exchanges of their own between
members: the driver answers one through the optional ``answerer`` when the first frame a
member sends is a QUERY, and never hands it to the core.

Addresses must be IP literals: a host name would make every send a blocking DNS lookup,
so datagrams to one are not sent (counted as ``io.send_errors``).
"""

from __future__ import annotations

import functools
import ipaddress
import random
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from mesh import wire
from mesh.config import META_MAX, MeshConfig
from mesh.core import MeshCore, StreamRequest
from mesh.delegate import Answerer, Delegate
from mesh.errors import DropReason, LocalProtocolError, MeshError, MetaTooLarge
from mesh.events import Event
from mesh.handshake import (
    HELLO_PREFIX_LENGTH,
    Initiator,
    Session,
    hello_length_from_prefix,
    respond,
)
from mesh.keys import Identity, fingerprint
from mesh.member import Address, Member, MemberState
from mesh.query import MAX_SERVED_QUERIES, QUERY_MAX_ANSWER, QUERY_MAX_REQUEST, QueryError, exchange
from mesh.security import DatagramSeal
from mesh.stats import Stats
from mesh.streams import Reader, open_session, read_frame

EVENT_BUFFER = 1024
"""Default events a subscriber may fall behind by before events are dropped for it."""

_RECV_SIZE = 65535
_BIND_ATTEMPTS = 32
_ACCEPT_BACKOFF = 0.1
_MAX_STRANGERS = 2
"""Admission requests served at once; more are closed at once (``busy``)."""
ADMISSION_MAX_REQUEST = 16 * 1024
"""Largest frame a non-member may send (its admission request)."""


class JoinError(MeshError):
    """No seed completed a join exchange."""


@dataclass(slots=True)
class IOStats:
    """What went wrong below the protocol (the core's :class:`~mesh.stats.Stats` holds the
    rest, including stream drop reasons)."""

    send_errors: int = 0
    """Datagrams the socket refused (buffer full, unreachable, not an IP literal)."""
    receive_errors: int = 0
    """Errors from ``recvfrom`` (e.g. ECONNREFUSED reported for an earlier send)."""
    accept_errors: int = 0
    """Errors from ``accept`` (e.g. out of file descriptors)."""
    stream_failures: Counter[str] = field(default_factory=Counter)
    """Outbound exchanges that failed, by cause: ``connect``, ``closed`` (the peer hung
    up or reset), ``too_large`` (our own frame over ``max_frame``); handshake and frame
    failures are counted as drops instead."""
    stream_resets: int = 0
    """Inbound exchanges the peer reset mid-way."""
    events_dropped: int = 0
    """Events not delivered to a subscriber whose buffer was full."""
    admissions: int = 0
    """Admission requests from non-members the delegate accepted."""
    admissions_refused: int = 0
    """Admission requests the delegate refused (also counted as ``not_member`` drops)."""
    queries_answered: int = 0
    """Members' queries the answerer answered."""
    queries_refused: int = 0
    """Members' queries refused: by the answerer, for want of one, or failed (below)."""
    queries_failed: int = 0
    """Queries whose answerer raised or answered over ``QUERY_MAX_ANSWER`` (refused)."""


@dataclass(slots=True)
class _Attempt:
    """How one outbound exchange ended."""

    replied: bool = False
    """The core has been handed this request's reply (so no failure report is due)."""
    ok: bool = False
    reason: str = "timed out"


@dataclass(slots=True)
class _Waiter:
    """Someone (:meth:`MeshNode.join`) awaits an outbound exchange."""

    done: trio.Event = field(default_factory=trio.Event)
    ok: bool = False
    reason: str = ""


@functools.lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_address(addr: Address, what: str) -> Address:
    host, port = addr
    if not _is_ip(host):
        raise ValueError(f"{what} host must be an IP address, not {host!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} port out of range: {port}")
    return host, port


class MeshNode:
    """One mesh member on real sockets. Start it with ``await nursery.start(node.run)``.

    ``bind`` may use port 0 (a free port is chosen for both UDP and TCP); ``advertise``
    is the address others reach this node at (default: the bound one; required when
    binding a wildcard address). ``boot_epoch`` must grow every time this identity
    starts (see :mod:`mesh.security`). ``config.max_streams`` caps inbound exchanges
    (more are closed at once, counted ``busy``) and, separately, outbound ones (more
    wait their turn within their ``stream_timeout``).

    ``answerer`` answers members' queries (:meth:`query` on another node); without one
    every query is refused.
    """

    def __init__(
        self,
        *,
        identity: Identity,
        mesh_id: bytes,
        bind: Address,
        config: MeshConfig,
        delegate: Delegate,
        boot_epoch: int,
        advertise: Address | None = None,
        meta: bytes = b"",
        rng: random.Random | None = None,
        admissions: bool = False,
        answerer: Answerer | None = None,
    ) -> None:
        self._identity = identity
        self._admissions = admissions
        self._strangers = 0
        self._answerer = answerer
        self._queries = 0
        self._mesh_id = bytes(mesh_id)
        self._bind = _check_address(bind, "bind")
        if advertise is not None:
            self._advertise: Address | None = _check_address(advertise, "advertise")
        elif ipaddress.ip_address(bind[0]).is_unspecified:
            raise ValueError(f"binding {bind[0]} needs an advertise address others can reach")
        else:
            self._advertise = None
        self.config = config
        self._delegate = delegate
        self._boot_epoch = boot_epoch
        if len(meta) > META_MAX:
            raise MetaTooLarge(len(meta), META_MAX)
        self._meta = meta
        self._rng = rng or random.Random()
        self.io = IOStats()
        self._core: MeshCore | None = None
        self._nursery: trio.Nursery | None = None
        self._udp: socket.socket | None = None
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._waiters: dict[int, _Waiter] = {}
        self._inbound = 0
        self._out_slots = trio.Semaphore(max(1, config.max_streams))
        self._wake = trio.Event()
        self._sleeping_until = float("inf")
        self._flushed: trio.Event | None = None

    # ------------------------------------------------------------------ state

    @property
    def key(self) -> bytes:
        """This node's id (its Ed25519 public key)."""
        return self._identity.public_key

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is listening."""
        return self._nursery is not None

    @property
    def core(self) -> MeshCore:
        """The protocol core (once started; it keeps its final state after a stop)."""
        if self._core is None:
            raise LocalProtocolError("the node has not started: run MeshNode.run first")
        return self._core

    def _live_core(self) -> MeshCore:
        if self._nursery is None:
            raise LocalProtocolError("the node is not running")
        return self.core

    @property
    def addr(self) -> Address:
        """The advertised address (known once running: port 0 is resolved)."""
        return self.core.addr

    @property
    def stats(self) -> Stats:
        """The core's protocol counters (``drops`` includes stream drops)."""
        return self.core.stats

    def members(self) -> list[Member]:
        """Every known member, this node included."""
        return self.core.members()

    def member(self, key: bytes) -> Member | None:
        """The record of ``key``."""
        return self.core.member(key)

    # ------------------------------------------------------------------ commands

    def broadcast(self, payload: bytes, topic: str = "") -> bytes:
        """Send ``payload`` once to every member, or only to the audience of ``topic``
        (see :meth:`mesh.Delegate.in_audience`); returns the broadcast id."""
        bid = self._live_core().broadcast(trio.current_time(), payload, topic)
        self._flush()
        return bid

    def forget(self, key: bytes) -> None:
        """Remove a member whose membership was revoked (the delegate must already
        refuse it); its datagrams stop opening and gossip about it is ignored."""
        self._live_core().forget(trio.current_time(), key)
        self._flush()

    def set_meta(self, meta: bytes) -> None:
        """Publish new metadata (:class:`~mesh.errors.MetaTooLarge` over 512 bytes)."""
        self._live_core().set_meta(trio.current_time(), meta)
        self._flush()

    def subscribe(self, buffer: int = EVENT_BUFFER) -> trio.MemoryReceiveChannel[Event]:
        """A channel of the core's events from now on, closed when the node stops.

        The protocol never waits for a subscriber: when ``buffer`` events are pending,
        newer ones are dropped for that subscriber and counted in ``io.events_dropped``.
        Close the channel to unsubscribe.
        """
        send, receive = trio.open_memory_channel[Event](buffer)
        self._subscribers.append(send)
        return receive

    async def join(self, seeds: Sequence[Address]) -> int:
        """Exchange state with every seed at once; how many exchanges succeeded.

        Raises :class:`JoinError` when none did, with each seed's reason, and
        :class:`~mesh.errors.LocalProtocolError` when the only seed is this node.
        """
        core = self._live_core()
        requests = core.join(trio.current_time(), [(h, int(p)) for h, p in seeds])
        waiters = {request.id: _Waiter() for request in requests}
        self._waiters.update(waiters)
        self._flush()
        for waiter in waiters.values():
            await waiter.done.wait()
        ok = sum(w.ok for w in waiters.values())
        if not ok:
            reasons = "; ".join(
                f"{r.addr[0]}:{r.addr[1]}: {waiters[r.id].reason}" for r in requests
            )
            raise JoinError(f"could not join the mesh through any seed ({reasons})")
        return ok

    async def query(self, key: bytes, payload: bytes, *, wait: float | None = None) -> bytes:
        """Ask member ``key`` (see :mod:`mesh.query`) and return its answer, waiting at
        most ``wait`` seconds (default ``stream_timeout``).

        Raises :class:`~mesh.query.QueryError` when there is no answer (unknown, dead or
        unreachable member, timeout, refusal, busy) and
        :class:`~mesh.errors.LocalProtocolError` for a query to this node itself or one
        over :data:`~mesh.query.QUERY_MAX_REQUEST` bytes.
        """
        core = self._live_core()
        if key == self.key:
            raise LocalProtocolError("a node does not query itself")
        request = wire.encode(wire.Query(payload))
        if len(request) > QUERY_MAX_REQUEST:
            raise LocalProtocolError(
                f"a query of {len(payload)} bytes is over the {QUERY_MAX_REQUEST}-byte limit"
            )
        who = fingerprint(key)
        member = core.member(key)
        if member is None or not self._delegate.is_member(key):
            raise QueryError("unknown", f"{who} is not a member this node knows")
        if not member.reachable:
            gone = "has left the mesh" if member.state is MemberState.LEFT else "is dead"
            raise QueryError("unreachable", f"{who} {gone}")
        host, port = member.addr
        if not _is_ip(host):
            raise QueryError("unreachable", f"{who} has no IP address ({host})")
        limit = self.config.stream_timeout if wait is None else wait
        is_member = self._delegate.is_member
        try:
            with trio.fail_after(limit):
                async with self._out_slots:
                    return await exchange(
                        self._identity,
                        self._mesh_id,
                        (host, port),
                        key,
                        request,
                        is_member,
                        core.stats.drop,
                    )
        except trio.TooSlowError:
            raise QueryError("timeout", f"{who} did not answer within {limit:g} s") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise QueryError(
                "unreachable", f"cannot reach {who} at {host}:{port}: {reason}"
            ) from None
        except trio.BrokenResourceError:
            raise QueryError("unreachable", f"{who} reset the connection") from None

    async def leave(self, grace: float = 5.0) -> None:
        """Announce a graceful leave, then keep gossiping until the announcement was sent
        its full count, nobody is left to tell, or ``grace`` seconds passed. The caller
        then stops :meth:`run`."""
        core = self._live_core()
        core.leave(trio.current_time())
        self._flush()
        with trio.move_on_after(grace):
            while not core.leave_sent and core.table.reachable > 1:
                self._flushed = flushed = trio.Event()
                await flushed.wait()

    # ------------------------------------------------------------------ running

    async def run(
        self, *, task_status: trio.TaskStatus[MeshNode] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, start the protocol, report ``started(self)``, run until cancelled."""
        if self._core is not None:
            raise LocalProtocolError("a MeshNode runs once")
        udp, tcp = await self._bind_sockets()
        try:
            port = udp.getsockname()[1]
            host, adv_port = self._advertise or (self._bind[0], 0)
            seal = DatagramSeal(
                self._identity, self._delegate.is_member, boot_epoch=self._boot_epoch
            )
            self._core = MeshCore(
                key=self.key,
                addr=(host, adv_port or port),
                config=self.config,
                seal=seal,
                delegate=self._delegate,
                rng=self._rng,
                now=trio.current_time(),
                meta=self._meta,
            )
            self._udp = udp
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_loop, trio.socket.from_stdlib_socket(udp))
                nursery.start_soon(self._accept_loop, trio.SocketListener(tcp))
                nursery.start_soon(self._timer_loop)
                self._flush()
                task_status.started(self)
        finally:
            self._nursery = None
            udp.close()
            tcp.close()
            for channel in self._subscribers:
                channel.close()
            self._subscribers.clear()
            for waiter in self._waiters.values():
                waiter.reason = "the node stopped"
                waiter.done.set()
            self._waiters.clear()

    async def _bind_sockets(self) -> tuple[socket.socket, trio.socket.SocketType]:
        """UDP and TCP on one port; with port 0, retry until a port is free for both."""
        host, port = self._bind
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        for attempt in range(_BIND_ATTEMPTS):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((host, port))
                # Reuse lets a restarted node take its port back despite TIME_WAIT (not set
                # on UDP, where Linux would let two sockets share the port).
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(max(128, self.config.max_streams))
            except OSError:
                udp.close()
                tcp.close()
                if port != 0 or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            return udp, tcp
        raise AssertionError("unreachable")  # pragma: no cover

    def _flush(self) -> None:
        """Carry out everything the core produced since the last flush."""
        core = self._core
        nursery = self._nursery
        if core is None or nursery is None:
            return
        for addr, data in core.datagrams_to_send():
            self._send_datagram(addr, data)
        for request in core.streams_to_open():
            nursery.start_soon(self._run_stream, request)
        events = core.events()
        if events and self._subscribers:
            self._publish(events)
        if core.next_deadline() < self._sleeping_until:
            self._wake.set()
        if self._flushed is not None:
            self._flushed.set()
            self._flushed = None

    def _send_datagram(self, addr: Address, data: bytes) -> None:
        udp = self._udp
        if udp is None or not _is_ip(addr[0]):
            self.io.send_errors += 1
            return
        try:
            # Non-blocking (trio set it so): a full buffer drops the datagram, as loss would.
            udp.sendto(data, addr)
        except (OSError, ValueError, OverflowError):
            self.io.send_errors += 1

    def _publish(self, events: list[Event]) -> None:
        for channel in list(self._subscribers):
            for event in events:
                try:
                    channel.send_nowait(event)
                except trio.WouldBlock:
                    self.io.events_dropped += 1
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._subscribers.remove(channel)
                    break

    async def _timer_loop(self) -> None:
        core = self.core
        while True:
            self._wake = trio.Event()
            self._sleeping_until = core.next_deadline()
            with trio.move_on_at(self._sleeping_until):
                await self._wake.wait()  # set by _flush when an input brings a deadline forward
            now = trio.current_time()
            if now >= core.next_deadline():
                core.tick(now)
                self._flush()

    async def _receive_loop(self, udp: trio.socket.SocketType) -> None:
        core = self.core
        while True:
            try:
                data, source = await udp.recvfrom(_RECV_SIZE)
            except OSError:
                # Linux may report an ICMP error (ECONNREFUSED) for an earlier send here.
                self.io.receive_errors += 1
                await trio.lowlevel.checkpoint()
                continue
            core.receive_datagram(trio.current_time(), (source[0], source[1]), data)
            self._flush()

    # ------------------------------------------------------------------ TCP, outbound

    async def _run_stream(self, request: StreamRequest) -> None:
        """Run one exchange within ``stream_timeout``; a failure is reported, never raised."""
        core = self.core
        attempt = _Attempt()
        with trio.move_on_after(self.config.stream_timeout) as scope:
            async with self._out_slots:
                try:
                    await self._initiate(request, attempt)
                except OSError as exc:  # includes every connect failure
                    attempt.reason = f"cannot connect: {exc.strerror or exc}"
                    self.io.stream_failures["connect"] += 1
                except trio.BrokenResourceError:
                    attempt.reason = "connection reset"
                    self.io.stream_failures["closed"] += 1
        if scope.cancelled_caught:
            core.stats.drop(DropReason.TIMEOUT)
        if request.expects_reply and not attempt.replied:
            core.stream_reply_received(trio.current_time(), request, request.peer or b"", None)
            self._flush()
        waiter = self._waiters.pop(request.id, None)
        if waiter is not None:
            waiter.ok, waiter.reason = attempt.ok, attempt.reason
            waiter.done.set()

    async def _initiate(self, request: StreamRequest, attempt: _Attempt) -> None:
        core = self.core
        host, port = request.addr
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            initiator = Initiator(self._identity, self._mesh_id, max_frame=self.config.max_frame)
            session = await open_session(stream, initiator, self._delegate.is_member, request.peer)
            if session is None:
                attempt.reason = "closed during the handshake (are we a member?)"
                self.io.stream_failures["closed"] += 1
                return
            if isinstance(session, DropReason):
                attempt.reason = f"handshake refused: {session}"
                core.stats.drop(session)
                return
            if not await self._send_frame(stream, session, request.payload, attempt):
                return
            if not request.expects_reply:
                attempt.ok = True
                return
            frame = await read_frame(stream, session)
            if not isinstance(frame, bytes):
                if frame is None:
                    attempt.reason = "closed before replying"
                    self.io.stream_failures["closed"] += 1
                else:
                    attempt.reason = f"bad reply: {frame}"
                    core.stats.drop(frame)
                return
            attempt.replied = True
            final = core.stream_reply_received(trio.current_time(), request, session.peer, frame)
            self._flush()
            if final is None:
                attempt.reason = "reply not accepted"
                return
            attempt.ok = True
            await self._send_frame(stream, session, final, attempt)

    async def _send_frame(
        self, stream: trio.SocketStream, session: Session, payload: bytes, attempt: _Attempt
    ) -> bool:
        try:
            frame = session.seal_frame(payload)
        except LocalProtocolError:
            attempt.reason = "frame over max_frame"
            self.io.stream_failures["too_large"] += 1
            return False
        await stream.send_all(frame)
        return True

    # ------------------------------------------------------------------ TCP, inbound

    async def _admit(
        self, stream: trio.SocketStream, reader: Reader, session: Session, reply: bytes
    ) -> DropReason | None:
        """A non-member's one exchange: an admission request, answered by the delegate."""
        await stream.send_all(reply)
        session.feed(reader.rest())
        frame = await read_frame(stream, session)
        if not isinstance(frame, bytes):
            return DropReason.TRUNCATED if frame is None else frame
        msg = wire.decode_one(frame, ADMISSION_MAX_REQUEST)
        if isinstance(msg, DropReason):
            return msg
        if not isinstance(msg, wire.AdmitRequest):
            return DropReason.NOT_MEMBER  # a stranger may do nothing else
        self.core.stats.message_in(msg)
        answer = self._delegate.admit(session.peer, msg.app)
        self._flush()
        if answer is None:
            self.io.admissions_refused += 1
            return DropReason.NOT_MEMBER
        self.io.admissions += 1
        try:
            await stream.send_all(session.seal_frame(wire.encode(wire.AdmitReply(answer))))
        except LocalProtocolError:
            return DropReason.OVERSIZED
        return None

    async def _answer(
        self, stream: trio.SocketStream, session: Session, frame: bytes
    ) -> DropReason | None:
        """A member's query: answered by the answerer, at most ``MAX_SERVED_QUERIES`` at
        once (more get BUSY), within the exchange's ``stream_timeout``."""
        if len(frame) > QUERY_MAX_REQUEST:
            return DropReason.OVERSIZED
        msg = wire.decode_one(frame, QUERY_MAX_REQUEST)
        if isinstance(msg, DropReason):
            return msg
        if not isinstance(msg, wire.Query):  # pragma: no cover - frame_type said QUERY
            return DropReason.MALFORMED
        self.core.stats.message_in(msg)
        if self._queries >= MAX_SERVED_QUERIES:
            await self._reply(stream, session, wire.QueryStatus.BUSY, b"")
            return DropReason.BUSY
        self._queries += 1
        try:
            answer = await self._ask_answerer(session.peer, msg.app)
        finally:
            self._queries -= 1
        if answer is None:
            self.io.queries_refused += 1
            await self._reply(stream, session, wire.QueryStatus.REFUSED, b"")
            return None
        self.io.queries_answered += 1
        await self._reply(stream, session, wire.QueryStatus.ANSWERED, answer)
        return None

    async def _ask_answerer(self, peer: bytes, payload: bytes) -> bytes | None:
        if self._answerer is None:
            return None
        try:
            answer = await self._answerer.answer_query(peer, payload)
        except Exception:
            # The answerer's bug must not take the mesh down: the asker is refused.
            self.io.queries_failed += 1
            return None
        # Over the cap, or more than this node's own frames carry (a small max_frame).
        if answer is not None and len(answer) > min(QUERY_MAX_ANSWER, self.config.max_frame - 64):
            self.io.queries_failed += 1
            return None
        return answer

    async def _reply(
        self, stream: trio.SocketStream, session: Session, status: wire.QueryStatus, app: bytes
    ) -> None:
        await stream.send_all(session.seal_frame(wire.encode(wire.QueryReply(status, app))))

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        nursery = self._nursery
        assert nursery is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                self.io.accept_errors += 1  # e.g. EMFILE: back off rather than spin
                await trio.sleep(_ACCEPT_BACKOFF)
                continue
            if self._inbound >= self.config.max_streams:
                self.core.stats.drop(DropReason.BUSY)
                await trio.aclose_forcefully(stream)
                continue
            self._inbound += 1
            nursery.start_soon(self._serve, stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        """One inbound exchange, bounded by ``stream_timeout`` so that a silent or slow
        peer cannot hold a slot; counts its drop reason before closing."""
        try:
            reason: DropReason | None = None
            with trio.move_on_after(self.config.stream_timeout) as scope:
                try:
                    reason = await self._respond(stream)
                except (OSError, trio.BrokenResourceError):
                    self.io.stream_resets += 1
            if scope.cancelled_caught:
                reason = DropReason.TIMEOUT
            if reason is not None:
                self.core.stats.drop(reason)
        finally:
            self._inbound -= 1
            await trio.aclose_forcefully(stream)

    async def _respond(self, stream: trio.SocketStream) -> DropReason | None:
        core = self.core
        reader = Reader(stream)
        prefix = await reader.exactly(HELLO_PREFIX_LENGTH)
        if prefix is None:
            # A bare connect-and-close (a port check) is not worth a drop count.
            return DropReason.TRUNCATED if reader.buffer else None
        length = hello_length_from_prefix(prefix)
        if isinstance(length, DropReason):
            return length
        rest = await reader.exactly(length - HELLO_PREFIX_LENGTH)
        if rest is None:
            return DropReason.TRUNCATED
        answer = respond(
            self._identity,
            self._mesh_id,
            prefix + rest,
            self._delegate.is_member,
            max_frame=self.config.max_frame,
            stranger_max_recv=ADMISSION_MAX_REQUEST if self._admissions else 0,
        )
        if isinstance(answer, DropReason):
            return answer
        session, reply = answer
        if session.stranger:
            if self._strangers >= _MAX_STRANGERS:
                return DropReason.BUSY
            self._strangers += 1
            try:
                return await self._admit(stream, reader, session, reply)
            finally:
                self._strangers -= 1
        await stream.send_all(reply)
        session.feed(reader.rest())
        # The peer is proven only once its first frame opens (a replayed hello gets a
        # reply but cannot produce a frame): the core hears of nothing before that.
        frame = await read_frame(stream, session)
        if not isinstance(frame, bytes):
            return DropReason.TRUNCATED if frame is None else frame
        if wire.frame_type(frame) == wire.MsgType.QUERY:
            return await self._answer(stream, session, frame)
        reply_frame = core.stream_request_received(trio.current_time(), session.peer, frame)
        self._flush()
        if reply_frame is None:
            return None
        try:
            await stream.send_all(session.seal_frame(reply_frame))
        except LocalProtocolError:
            return DropReason.OVERSIZED
        # A push-pull initiator sends a final leg; a TCP ping's initiator just closes.
        final = await read_frame(stream, session)
        if final is None:
            return None
        if isinstance(final, DropReason):
            return final
        core.stream_final_received(trio.current_time(), session.peer, final)
        self._flush()
        return None
