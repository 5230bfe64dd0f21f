"""Deterministic whole-mesh simulation: many cores, one seeded fake network.

Every simulated node is a real :class:`~mesh.core.MeshCore`; only the network and the
clock are simulated. The network is seeded and can lose, duplicate, delay (and so
reorder) datagrams, partition nodes (symmetrically or not), stall a node's processing
(as SIGSTOP would) and kill or restart nodes. TCP exchanges are simulated as reliable
request/reply pairs that fail after the stream timeout when the peer cannot be reached.

Two ways to run it, with identical results for the same seed:

- :meth:`Simulation.run_until` - a plain discrete-event loop (benchmarks);
- :meth:`Simulation.run` - the same loop paced by trio's clock, so that under
  ``trio.testing.MockClock(autojump_threshold=0)`` other trio tasks (a test injecting
  faults with ``trio.sleep``) interleave with the mesh in virtual time.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from mesh.config import MeshConfig
from mesh.core import MeshCore, StreamRequest
from mesh.delegate import StaticMembers
from mesh.events import Event
from mesh.keys import Identity
from mesh.member import Address, Member, MemberState
from mesh.security import DatagramSeal, PlainSeal, Seal

EventHook = Callable[[int, Event, float], None]
Delivery = Callable[["SimNode"], None]
"""Something arriving at a node: a datagram or one leg of a TCP exchange."""


@dataclass(slots=True)
class NetworkModel:
    """How the fake network treats datagrams (TCP uses latency and reachability only)."""

    latency: tuple[float, float] = (0.001, 0.005)
    """One-way delay, drawn uniformly from this range; overlapping draws reorder."""
    loss: float = 0.0
    """Probability that a datagram is lost."""
    duplicate: float = 0.0
    """Probability that a delivered datagram is delivered twice."""


@dataclass(slots=True)
class SimNode:
    """One simulated node."""

    index: int
    key: bytes
    addr: Address
    core: MeshCore
    up: bool = True
    stalled_until: float = 0.0
    deaf_until: float = 0.0
    backlog: list[Delivery] = field(default_factory=list)


class Simulation:
    """N nodes on a seeded fake network."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        config: MeshConfig | None = None,
        network: NetworkModel | None = None,
        crypto: Literal["nacl", "plain"] = "plain",
        converged: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.config = config or MeshConfig.lan()
        self.network = network or NetworkModel()
        self.crypto = crypto
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._timer_at: dict[int, float] = {}
        self._blocked: set[tuple[int, int]] = set()
        self._groups: dict[int, int] | None = None
        self.hooks: list[EventHook] = []
        self.datagrams = 0
        self.bytes = 0
        self.lost = 0
        self._identities: list[Identity | bytes] = [self._identity(i) for i in range(n)]
        keys = [self._public(ident) for ident in self._identities]
        self.members = StaticMembers(keys)
        self.by_addr: dict[Address, int] = {}
        self.nodes: list[SimNode] = []
        for i in range(n):
            addr = self._addr(i)
            self.by_addr[addr] = i
            self.nodes.append(SimNode(i, keys[i], addr, self._core(i, epoch=1)))
        if converged:
            view = [
                Member(k, self._addr(i), 0, MemberState.ALIVE, b"", 0.0) for i, k in enumerate(keys)
            ]
            for node in self.nodes:
                node.core.assume_members(self.now, view)
                node.core.queue.clear()
        for node in self.nodes:
            self._after_input(node)

    # ------------------------------------------------------------------ construction

    def _identity(self, i: int) -> Identity | bytes:
        seed = self.rng.randbytes(32)
        return Identity.from_seed(seed) if self.crypto == "nacl" else seed

    @staticmethod
    def _public(ident: Identity | bytes) -> bytes:
        return ident.public_key if isinstance(ident, Identity) else ident

    @staticmethod
    def _addr(i: int) -> Address:
        return (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 7946)

    def _core(self, i: int, epoch: int) -> MeshCore:
        ident = self._identities[i]
        seal: Seal
        if isinstance(ident, Identity):
            nonce_rng = random.Random(self.rng.getrandbits(64))
            seal = DatagramSeal(
                ident, self.members.is_member, boot_epoch=epoch, nonce_source=nonce_rng.randbytes
            )
        else:
            seal = PlainSeal(ident, self.members.is_member, boot_epoch=epoch)
        return MeshCore(
            key=self._public(ident),
            addr=self._addr(i),
            config=self.config,
            seal=seal,
            delegate=self.members,
            rng=random.Random(self.rng.getrandbits(64)),
            now=self.now,
        )

    # ------------------------------------------------------------------ faults

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the network: nodes in different groups cannot reach each other.
        Nodes in no group form one more group."""
        self._groups = {}
        for g, members in enumerate(groups):
            for i in members:
                self._groups[i] = g + 1

    def block(self, src: int, dst: int) -> None:
        """Drop everything from ``src`` to ``dst`` (an asymmetric partition)."""
        self._blocked.add((src, dst))

    def heal(self) -> None:
        """Remove every partition and block."""
        self._groups = None
        self._blocked.clear()

    def reachable(self, src: int, dst: int) -> bool:
        """Whether the network currently carries traffic from ``src`` to ``dst``."""
        if (src, dst) in self._blocked:
            return False
        groups = self._groups
        return groups is None or groups.get(src, 0) == groups.get(dst, 0)

    def stall(self, i: int, seconds: float) -> None:
        """Freeze node ``i``'s processing for ``seconds`` (its input waits, as on SIGSTOP)."""
        node = self.nodes[i]
        node.stalled_until = max(node.stalled_until, self.now + seconds)
        self._push(node.stalled_until, lambda: self._unstall(node))

    def slow(self, i: int, seconds: float) -> None:
        """Delay node ``i``'s processing of input for ``seconds`` while its timers keep
        running - a CPU-starved receive path (the Lifeguard paper's slow member): its
        probes time out because the ACKs wait unread."""
        node = self.nodes[i]
        node.deaf_until = max(node.deaf_until, self.now + seconds)
        self._push(node.deaf_until, lambda: self._undeafen(node))

    def _undeafen(self, node: SimNode) -> None:
        if node.deaf_until > self.now or node.stalled_until > self.now or not node.up:
            return
        backlog, node.backlog = node.backlog, []
        for item in backlog:
            self._deliver_now(node, item)

    def kill(self, i: int) -> None:
        """Stop node ``i`` abruptly (kill -9): no leave, nothing more sent or received."""
        self.nodes[i].up = False

    def restart(self, i: int, seeds: Iterable[int] = ()) -> None:
        """Start node ``i`` again with the same identity and a fresh state; join ``seeds``."""
        node = self.nodes[i]
        epoch = node.core.seal.boot_epoch + 1
        node.core = self._core(i, epoch=epoch)
        node.up = True
        node.stalled_until = node.deaf_until = 0.0
        node.backlog.clear()
        seeds = list(seeds)
        if seeds:
            node.core.join(self.now, [self.nodes[s].addr for s in seeds])
        self._after_input(node)

    # ------------------------------------------------------------------ the event loop

    def _push(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action))

    def run_until(self, t: float) -> None:
        """Process every event up to virtual time ``t``."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            when, _, action = heapq.heappop(heap)
            self.now = when
            action()
        self.now = max(self.now, t)

    async def run(self, duration: float, quantum: float = 0.05) -> None:
        """Run for ``duration`` virtual seconds in step with trio's clock."""
        import trio  # the core stays free of trio; only this pacing needs it

        end = self.now + duration
        while self.now < end:
            step = min(end, self.now + quantum)
            await trio.sleep_until(trio.current_time() + (step - self.now))
            self.run_until(step)

    def _schedule_timer(self, node: SimNode) -> None:
        when = node.core.next_deadline()
        if self._timer_at.get(node.index) == when:
            return
        self._timer_at[node.index] = when
        self._push(when, lambda: self._fire_timer(node, when))

    def _fire_timer(self, node: SimNode, when: float) -> None:
        if self._timer_at.get(node.index) != when or not node.up:
            return
        if node.stalled_until > self.now:
            return  # resumed by _unstall
        del self._timer_at[node.index]
        node.core.tick(self.now)
        self._after_input(node)

    def _unstall(self, node: SimNode) -> None:
        if node.stalled_until > self.now or not node.up:
            return
        # A resumed process finds its timers overdue and its socket full; timers run
        # first (the worst case for it: probes it sent before stalling time out before
        # the ACKs waiting in the socket are read).
        self._timer_at.pop(node.index, None)
        node.core.tick(self.now)
        self._after_input(node)
        if node.deaf_until <= self.now:
            backlog, node.backlog = node.backlog, []
            for item in backlog:
                self._deliver_now(node, item)

    def flush(self, i: int) -> None:
        """Put on the network what node ``i``'s core produced after a direct command
        (``sim.nodes[i].core.broadcast(...)``, ``leave``, ``set_meta``, ``join``)."""
        self._after_input(self.nodes[i])

    def _after_input(self, node: SimNode) -> None:
        """Collect what the core produced and put it on the network."""
        core = node.core
        for event in core.events():
            for hook in self.hooks:
                hook(node.index, event, self.now)
        for addr, data in core.datagrams_to_send():
            self._send_datagram(node, addr, data)
        for request in core.streams_to_open():
            self._open_stream(node, request)
        self._schedule_timer(node)

    def _latency(self) -> float:
        low, high = self.network.latency
        return self.rng.uniform(low, high)

    def _tcp_delay(self, rto: float) -> float:
        """One leg of a TCP exchange: latency plus a retransmission timeout per loss."""
        delay = self._latency()
        while self.rng.random() < self.network.loss:
            delay += rto
            rto *= 2
        return delay

    def _send_datagram(self, src: SimNode, addr: Address, data: bytes) -> None:
        self.datagrams += 1
        self.bytes += len(data)
        dst = self.by_addr.get(addr)
        if (
            dst is None
            or not self.reachable(src.index, dst)
            or self.rng.random() < self.network.loss
        ):
            self.lost += 1
            return
        copies = 2 if self.rng.random() < self.network.duplicate else 1
        source = src.addr
        target = self.nodes[dst]

        def arrive(node: SimNode) -> None:
            node.core.receive_datagram(self.now, source, data)

        for _ in range(copies):
            self._push(self.now + self._latency(), lambda: self._deliver(target, arrive))

    def _deliver(self, node: SimNode, item: Delivery) -> None:
        if not node.up:
            return
        if node.stalled_until > self.now or node.deaf_until > self.now:
            node.backlog.append(item)
            return
        self._deliver_now(node, item)

    def _deliver_now(self, node: SimNode, item: Delivery) -> None:
        item(node)
        self._after_input(node)

    # ------------------------------------------------------------------ simulated TCP

    def _open_stream(self, src: SimNode, request: StreamRequest) -> None:
        dst_index = self.by_addr.get(request.addr)
        timeout = self.config.stream_timeout
        src_epoch = src.core

        def fail() -> None:
            if src.up and src.core is src_epoch and request.expects_reply:
                src.core.stream_reply_received(self.now, request, b"", None)
                self._after_input(src)

        if dst_index is None:
            self._push(self.now + timeout, fail)
            return
        dst = self.nodes[dst_index]
        if request.peer is not None and request.peer != dst.key:
            self._push(self.now + timeout, fail)
            return
        rtt_ok = self.reachable(src.index, dst_index) and self.reachable(dst_index, src.index)
        if not (rtt_ok and dst.up):
            self._push(self.now + timeout, fail)
            return

        def at_responder(node: SimNode) -> None:
            if not (node.up and self.reachable(dst_index, src.index)):
                self._push(self.now + timeout, fail)
                return
            reply = node.core.stream_request_received(self.now, src.key, request.payload)
            if reply is None or not request.expects_reply:
                return
            self.bytes += len(reply)
            self._push(
                self.now + self._tcp_delay(0.2), lambda: self._deliver(src, at_initiator(reply))
            )

        def at_initiator(reply: bytes) -> Delivery:
            return lambda node: on_reply(node, reply)

        def on_reply(node: SimNode, reply: bytes) -> None:
            if node.core is not src_epoch:
                return
            final = node.core.stream_reply_received(self.now, request, dst.key, reply)
            if final is not None:
                self.bytes += len(final)
                self._push(
                    self.now + self._tcp_delay(0.2),
                    lambda: self._deliver(dst, at_final(final)),
                )

        def at_final(final: bytes) -> Callable[[SimNode], None]:
            return lambda node: node.core.stream_final_received(self.now, src.key, final)

        self.bytes += len(request.payload)
        # Connection set-up: a lost SYN waits the kernel's 1 s initial RTO.
        delay = self._latency() + self._tcp_delay(1.0)
        if delay > timeout:
            self._push(self.now + timeout, fail)
            return
        self._push(self.now + delay, lambda: self._deliver(dst, at_responder))

    # ------------------------------------------------------------------ views

    def up_nodes(self) -> list[SimNode]:
        """Nodes currently running."""
        return [n for n in self.nodes if n.up]

    def views_agree(self) -> bool:
        """Whether every running node sees exactly the running nodes as alive."""
        live = {n.key for n in self.up_nodes()}
        for node in self.up_nodes():
            alive = {m.key for m in node.core.table if m.state is MemberState.ALIVE}
            if alive != live:
                return False
        return True

    def drops(self) -> dict[str, int]:
        """Drop counters summed over every node."""
        total: dict[str, int] = {}
        for node in self.nodes:
            for reason, count in node.core.stats.drops.items():
                total[reason] = total.get(reason, 0) + count
        return total
