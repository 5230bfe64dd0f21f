"""Broadcast spread, ours vs Debian's serf: ``uv run python -m bench.mesh_vs_serf``.

Options: ``--nodes N`` (50 is the headline), ``--rounds R``, ``--only ours|serf``,
``--ours-set FIELD=VALUE`` (an A/B override for our agents, e.g. ``eager_push=false``);
``--help`` lists the timing options.

In one invocation, one after the other (never at once: they would compete for the
cores), on 127.0.0.1 only:

1. N ``python -m mesh.agent`` processes, ``lan`` preset with serf's own gossip settings
   passed explicitly (gossip interval 200 ms, fan-out 3);
2. N ``serf agent`` processes, default LAN profile (memberlist's GossipInterval 200 ms,
   GossipNodes 3), each with a user-event handler that appends ``date +%s.%N`` and its
   node name to a log.

Each mesh is started (all joining through node 0), waited for until every node sees
all N, left idle for ``--idle`` seconds (CPU % per node over that window, then RSS per
node), and then sent ``--rounds`` broadcasts, each from a random node, each followed by
a quiet gap. The spread time of a broadcast at a node is the wall-clock time of its
delivery there minus the time taken just before the broadcast was handed to the origin
(a JSON line written to our agent's stdin; a request written to serf's RPC socket).
The origin itself is not counted: N-1 deliveries a round. Medians and maxima are over
all (node, round) deliveries.
Serf first gets one unmeasured warm-up event (agents ignore events older than their
join, and a fresh mesh's very first event can fall in that window).

Our bytes per node for one broadcast: the agents' ``bytes_out`` summed over all nodes,
after minus before the round's window (``--gap`` seconds from the broadcast), less the
background (probe and gossip) traffic at the rate measured over a window of the same
length with no broadcast just before it, divided by N; median over rounds. The agents
count datagrams only (sealed UDP payloads, no IP/UDP headers); TCP exchanges (push-pull
anti-entropy) are not in the figure, and a push-pull falling in one window and not the
other adds noise.

Caveats: serf's figures include its event-handler exec (a fork of /bin/sh, which execs
``date``); serf's events go out with Coalesce=false through its msgpack RPC socket (the
``serf event`` CLI would add its own start-up, and its default ``-coalesce=true`` holds
deliveries for the agent's 1 s user-event quiescent period).

JSON keys (last line): ``nodes, rounds, ours_median_s, ours_max_s, serf_median_s,
serf_max_s, ratio_median, ours_rss_mb, serf_rss_mb, ours_idle_cpu_pct,
serf_idle_cpu_pct, ours_bytes_per_node, ours_bg_bytes_per_node_s, ours_missed,
serf_missed, serf_origin_handler_s, caveats``. ``ratio_median`` = ours / serf (goal:
<= 0.5). ``*_missed`` counts deliveries that had not happened ``--timeout`` seconds
after a broadcast. ``serf_origin_handler_s`` is the median time from the RPC request to
the origin's own handler run: an upper bound on what serf's RPC and handler exec add to
each of its figures.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from bench.procs import (
    Proc,
    ProcSet,
    bench_session,
    check_alive,
    free_ports,
    idle_cpu_percent,
    port_open,
    total_rss_bytes,
    wait_until,
)
from bench.report import emit, machine, progress

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
GOSSIP_INTERVAL = 0.2
GOSSIP_NODES = 3
MB = 1024 * 1024

SERF_HANDLER_CAVEAT = (
    "serf delivery times include its event-handler exec (serf forks /bin/sh, which execs "
    "date: a few ms a delivery; serf_origin_handler_s bounds it); ours are the agent's own "
    "delivery timestamps"
)
SERF_COALESCE_CAVEAT = (
    "serf events are sent over its RPC socket with Coalesce=false: the serf event CLI "
    "would add its start-up, and its default -coalesce=true holds each delivery for the "
    "agent's 1 s user-event quiescent period"
)


@dataclass
class SideResult:
    """What one mesh measured."""

    delays: list[float] = field(default_factory=list)
    missed: int = 0
    rss_mb: float = 0.0
    idle_cpu_pct: float = 0.0
    bytes_per_node: float | None = None
    bg_bytes_per_node_s: float | None = None
    origin_lags: list[float] = field(default_factory=list)
    """serf only: the origin's own handler run, from the RPC request on."""

    def summary(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_median_s": round(statistics.median(self.delays), 4) if self.delays else None,
            f"{prefix}_max_s": round(max(self.delays), 4) if self.delays else None,
        }


@dataclass
class Plan:
    nodes: int
    rounds: int
    idle: float
    gap: float
    timeout: float
    start_timeout: float
    converge_timeout: float
    rng: random.Random
    workdir: Path
    agent: list[str] | None = None
    ours_set: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- ours


class OursState:
    """What the agents' stdout said, kept up to date by the reader threads."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.index = {key: i for i, key in enumerate(keys)}
        self.members: list[dict[str, str]] = [{} for _ in keys]
        self.listening: set[int] = set()
        # payload -> {node index: delivery time}
        self.deliveries: dict[str, dict[int, float]] = {}

    def on_event(self, node: int, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "listening":
            self.listening.add(node)
        elif kind == "broadcast":
            payload = str(event.get("payload"))
            got = self.deliveries.setdefault(payload, {})
            if node not in got and isinstance(event.get("t"), int | float):
                got[node] = float(event["t"])
        elif kind in ("alive", "joined", "updated", "suspect"):
            member = event.get("member")
            if isinstance(member, str) and member != self.keys[node]:
                self.members[node][member] = kind
        elif kind in ("dead", "left"):
            member = event.get("member")
            if isinstance(member, str):
                self.members[node].pop(member, None)

    def converged(self) -> bool:
        others = len(self.keys) - 1
        return all(len(m) >= others for m in self.members)

    def least_members(self) -> int:
        return min(len(m) for m in self.members)


def _stats_bytes(event: dict[str, Any]) -> int | None:
    """``bytes_out`` from a stats event, at its top level or one level down."""
    value = event.get("bytes_out")
    if isinstance(value, int):
        return value
    for inner in event.values():
        if isinstance(inner, dict) and isinstance(inner.get("bytes_out"), int):
            return int(inner["bytes_out"])
    return None


def ours_bytes_out(
    procs: list[Proc], pset: ProcSet, timeout: float = 5.0
) -> tuple[float, int] | None:
    """(time, total bytes_out of all agents) or None if some agent gave no figure."""
    starts = [len(p.snapshot()) for p in procs]
    sent = [p.send({"cmd": "stats"}) for p in procs]

    def stats_of(i: int) -> dict[str, Any] | None:
        for event in procs[i].events[starts[i] :]:
            if event.get("event") == "stats":
                return event
        return None

    if not pset.wait_for(lambda: all(stats_of(i) is not None for i in range(len(procs))), timeout):
        return None
    total = 0
    for i in range(len(procs)):
        event = stats_of(i)
        value = _stats_bytes(event) if event else None
        if value is None:
            return None
        total += value
    return statistics.fmean(sent), total


def run_ours(plan: Plan) -> SideResult:
    from mesh.keys import Identity

    n = plan.nodes
    if plan.agent is None and not (ROOT / "mesh" / "agent.py").exists():
        raise RuntimeError("mesh/agent.py does not exist (yet): run with --only serf")
    agent = plan.agent or [sys.executable, "-m", "mesh.agent"]
    seeds = [os.urandom(32) for _ in range(n)]
    keys = [Identity.from_seed(seed).public_key.hex() for seed in seeds]
    members_file = plan.workdir / "members.txt"
    members_file.write_text("".join(k + "\n" for k in keys))
    ports = free_ports(n, HOST, rng=plan.rng)
    mesh_id = f"bench-{os.getpid()}-{plan.rng.randrange(1 << 30)}"
    state = OursState(keys)
    pset = ProcSet()
    result = SideResult()
    logdir = plan.workdir / "ours"
    logdir.mkdir()

    def spawn(i: int) -> Proc:
        argv = [
            *agent,
            "--seed-hex",
            seeds[i].hex(),
            "--listen",
            f"{HOST}:{ports[i]}",
            "--mesh-id",
            mesh_id,
            "--members",
            str(members_file),
            "--preset",
            "lan",
            "--set",
            f"gossip_interval={GOSSIP_INTERVAL}",
            "--set",
            f"gossip_nodes={GOSSIP_NODES}",
        ]
        for extra in plan.ours_set:
            argv += ["--set", extra]
        if i:
            argv += ["--join", f"{HOST}:{ports[0]}"]
        return pset.spawn(
            argv,
            name=f"ours{i}",
            json_lines=True,
            stderr_path=logdir / f"n{i}.err",
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            on_event=lambda _p, ev, i=i: state.on_event(i, ev),
        )

    try:
        t_start = time.monotonic()
        procs = [spawn(0)]
        _expect(pset, lambda: 0 in state.listening, plan.start_timeout, procs, "node 0 listening")
        procs += [spawn(i) for i in range(1, n)]
        _expect(
            pset,
            lambda: len(state.listening) == n,
            plan.start_timeout,
            procs,
            f"all {n} agents listening",
        )
        progress(f"ours: {n} agents listening after {time.monotonic() - t_start:.1f} s")
        if not pset.wait_for(state.converged, plan.converge_timeout):
            check_alive(procs)
            raise RuntimeError(
                f"ours: not converged in {plan.converge_timeout:.0f} s "
                f"(least-informed node sees {state.least_members()} of {n - 1} others)"
            )
        progress(
            f"ours: every node sees all {n - 1} others after {time.monotonic() - t_start:.1f} s"
        )
        pids = [p.pid for p in procs]
        _measure_idle(plan, pids, result, "ours")

        # Bytes: before each broadcast window, a window of the same length with no
        # broadcast gives the background (probe, gossip) rate to subtract.
        prev = ours_bytes_out(procs, pset)
        if prev is None:
            progress("ours: agents gave no stats bytes_out: bytes per node not measured")
        token = f"{plan.rng.randrange(1 << 40):x}"
        per_round_bytes: list[float] = []
        bg_rates: list[float] = []
        for r in range(plan.rounds):
            origin = plan.rng.randrange(n)
            payload = f"bench-{token}-r{r}"
            before = bg_rate = None
            if prev is not None:
                time.sleep(plan.gap)
                before = ours_bytes_out(procs, pset)
                if before is not None:
                    bg_rate = (before[1] - prev[1]) / (before[0] - prev[0])
                    bg_rates.append(bg_rate / n)
            t0 = procs[origin].send({"cmd": "broadcast", "payload": payload})

            def receivers(payload: str = payload, origin: int = origin) -> dict[int, float]:
                got = state.deliveries.get(payload, {})
                return {i: t for i, t in got.items() if i != origin}

            pset.wait_for(lambda: len(receivers()) >= n - 1, plan.timeout)
            with pset.cond:
                got = dict(receivers())
            delays = [t - t0 for t in got.values()]
            result.delays += delays
            result.missed += n - 1 - len(got)
            _quiet_gap(t0, plan.gap)
            after = prev = ours_bytes_out(procs, pset) if before is not None else None
            extra = ""
            if before is not None and after is not None and bg_rate is not None:
                net = after[1] - before[1] - bg_rate * (after[0] - before[0])
                per_round_bytes.append(net / n)
                extra = (
                    f"; {(after[1] - before[1]) / n:.0f} B/node in the window, "
                    f"{net / n:.0f} net of background"
                )
            _round_line("ours", r, origin, delays, n, extra)
        if bg_rates:
            result.bg_bytes_per_node_s = statistics.median(bg_rates)
        if per_round_bytes:
            result.bytes_per_node = statistics.median(per_round_bytes)
        check_alive(procs)
        return result
    finally:
        pset.stop_all()


# --------------------------------------------------------------------------- serf


class SerfRPC:
    """Just enough of serf's msgpack RPC protocol: handshake, members, event."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.seq = 0
        self.request("handshake", {"Version": 1})

    def _next(self) -> Any:
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("serf RPC connection closed")
            self.unpacker.feed(data)

    def send(self, command: str, body: dict[str, Any] | None = None) -> tuple[int, float]:
        """Write a request; returns (its seq, ``time.time()`` just before the write)."""
        seq = self.seq
        self.seq += 1
        data = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            data += msgpack.packb(body)
        t = time.time()
        self.sock.sendall(data)
        return seq, t

    def response(self, seq: int, has_body: bool) -> Any:
        header = self._next()
        if header.get("Seq") != seq:
            raise RuntimeError(f"serf RPC: reply to seq {header.get('Seq')}, expected {seq}")
        if header.get("Error"):
            raise RuntimeError(f"serf RPC: {header['Error']}")
        return self._next() if has_body else None

    def request(
        self, command: str, body: dict[str, Any] | None = None, has_body: bool = False
    ) -> Any:
        seq, _ = self.send(command, body)
        return self.response(seq, has_body)

    def alive_members(self) -> int:
        reply = self.request("members", None, has_body=True)
        return sum(1 for m in reply["Members"] if m.get("Status") == "alive")

    def close(self) -> None:
        self.sock.close()


def serf_deliveries(log: Path, name: str) -> dict[str, float]:
    """node name -> first handler time for the user event ``name``."""
    got: dict[str, float] = {}
    try:
        text = log.read_text()
    except FileNotFoundError:
        return got
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name and parts[1] not in got:
            got[parts[1]] = float(parts[0])
    return got


class SerfMesh:
    """N running ``serf agent`` processes on 127.0.0.1, converged, with an RPC client each
    (see :func:`serf_mesh`), warmed up by one unmeasured user event. Node ``i`` is named
    ``s{i}``; every user event runs a handler that appends ``date +%s.%N``, the node's name
    and the event's name to :attr:`log`."""

    def __init__(self, nodes: int, log: Path, procs: list[Proc], clients: list[SerfRPC]) -> None:
        self.nodes = nodes
        self.log = log
        self.procs = procs
        self.clients = clients
        self.up_s = 0.0
        """From the first spawn until every RPC port answered."""
        self.converged_s = 0.0
        """From the first spawn until every node saw all N alive."""
        self.warmup_delivered = 0
        """Nodes that ran the handler for the unmeasured warm-up event."""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def event(self, origin: int, name: str) -> float:
        """Send user event ``name`` from node ``origin`` (RPC, Coalesce=false); returns
        ``time.time()`` taken just before the request was written."""
        seq, t0 = self.clients[origin].send(
            "event", {"Name": name, "Payload": b"x", "Coalesce": False}
        )
        self.clients[origin].response(seq, has_body=False)
        return t0

    def deliveries(self, name: str) -> dict[str, float]:
        """node name -> first handler time for the user event ``name``."""
        return serf_deliveries(self.log, name)

    def wait_deliveries(self, name: str, count: int, timeout: float) -> dict[str, float]:
        """Poll (bounded) until ``count`` nodes ran the handler for ``name``; what ran."""
        wait_until(lambda: len(self.deliveries(name)) >= count, timeout, interval=0.05)
        return self.deliveries(name)


@contextmanager
def serf_mesh(
    nodes: int,
    workdir: Path,
    *,
    rng: random.Random,
    start_timeout: float,
    converge_timeout: float,
) -> Iterator[SerfMesh]:
    """Start ``nodes`` serf agents (default LAN profile, all joining through node 0) with
    their logs under ``workdir/serf``; wait (bounded) until every one sees all alive;
    send one warm-up user event (not measured); stop them all on exit."""
    serf = shutil.which("serf")
    if serf is None:
        raise RuntimeError("serf is not installed (apt-get install serf)")
    n = nodes
    ports = free_ports(2 * n, HOST, rng=rng)
    bind, rpc = ports[:n], ports[n:]
    logdir = workdir / "serf"
    logdir.mkdir()
    log = logdir / "events.log"
    log.touch()
    handler = logdir / "handler.sh"
    # One exec of date: the smallest handler that /bin/sh can run. Lines are short
    # O_APPEND writes, so concurrent handlers do not interleave within a line.
    handler.write_text(
        "#!/bin/sh\n"
        f'exec date "+%s.%N $SERF_SELF_NAME $SERF_USER_EVENT" >> {shlex.quote(str(log))}\n'
    )
    handler.chmod(0o755)
    pset = ProcSet()
    clients: list[SerfRPC] = []

    def spawn(i: int) -> Proc:
        argv = [
            serf,
            "agent",
            f"-node=s{i}",
            f"-bind={HOST}:{bind[i]}",
            f"-rpc-addr={HOST}:{rpc[i]}",
            f"-event-handler=user={handler}",
            "-log-level=warn",
            "-profile=lan",
        ]
        if i:
            argv.append(f"-join={HOST}:{bind[0]}")
        return pset.spawn(
            argv,
            name=f"serf{i}",
            stdout_path=logdir / f"s{i}.out",
            stderr_path=logdir / f"s{i}.err",
            cwd=logdir,
        )

    try:
        t_start = time.monotonic()
        procs = [spawn(0)]
        if not wait_until(lambda: port_open(HOST, rpc[0]), start_timeout):
            check_alive(procs)
            raise RuntimeError("serf: node 0's RPC port never opened")
        procs += [spawn(i) for i in range(1, n)]
        if not wait_until(
            lambda: all(port_open(HOST, p) for p in rpc) or bool(pset.dead()), start_timeout
        ):
            raise RuntimeError("serf: not every RPC port opened")
        check_alive(procs)
        clients += [SerfRPC(p) for p in rpc]
        mesh = SerfMesh(n, log, procs, clients)
        mesh.up_s = time.monotonic() - t_start
        progress(f"serf: {n} agents up after {mesh.up_s:.1f} s")
        least = [0]

        def converged() -> bool:
            least[0] = min(c.alive_members() for c in clients)
            return least[0] == n

        if not wait_until(converged, converge_timeout, interval=0.5):
            check_alive(procs)
            raise RuntimeError(
                f"serf: not converged in {converge_timeout:.0f} s "
                f"(least-informed node sees {least[0]} of {n} alive)"
            )
        mesh.converged_s = time.monotonic() - t_start
        progress(f"serf: every node sees all {n} alive after {mesh.converged_s:.1f} s")
        # A first user event, not measured: agents that joined after an event's Lamport
        # time ignore it as old, and a fresh mesh's first event can fall in that window.
        warm = f"warmup-{rng.randrange(1 << 40):x}"
        mesh.event(0, warm)
        mesh.warmup_delivered = len(mesh.wait_deliveries(warm, n, 5.0))
        yield mesh
        check_alive(procs)
    finally:
        for c in clients:
            c.close()
        pset.stop_all()


def run_serf(plan: Plan) -> SideResult:
    n = plan.nodes
    result = SideResult()
    with serf_mesh(
        n,
        plan.workdir,
        rng=plan.rng,
        start_timeout=plan.start_timeout,
        converge_timeout=plan.converge_timeout,
    ) as mesh:
        _measure_idle(plan, mesh.pids, result, "serf")
        token = f"{plan.rng.randrange(1 << 40):x}"
        for r in range(plan.rounds):
            origin = plan.rng.randrange(n)
            name = f"bench-{token}-r{r}"
            t0 = mesh.event(origin, name)
            mesh.wait_deliveries(name, n, plan.timeout)
            got = mesh.deliveries(name)
            own = got.pop(f"s{origin}", None)
            if own is not None:
                result.origin_lags.append(own - t0)
            delays = [t - t0 for t in got.values()]
            result.delays += delays
            result.missed += n - 1 - len(got)
            _quiet_gap(t0, plan.gap)
            _round_line("serf", r, origin, delays, n, "")
    return result


# --------------------------------------------------------------------------- shared


def _expect(
    pset: ProcSet, predicate: Callable[[], bool], timeout: float, procs: list[Proc], what: str
) -> None:
    """Wait (bounded) for ``predicate``; on timeout, or when an agent exits, explain."""

    def done_or_dead() -> bool:
        return predicate() or any(not p.alive for p in procs)

    ok = pset.wait_for(done_or_dead, timeout)
    check_alive(procs)
    if not ok or not predicate():
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def measure_idle(pids: list[int], idle: float, side: str) -> tuple[float, float]:
    """(CPU % per process over ``idle`` seconds, RSS MB per process) of ``pids``, after up
    to 2 s for the join traffic to die down."""
    time.sleep(min(2.0, idle))
    cpu_pct = idle_cpu_percent(pids, idle)
    rss_mb = total_rss_bytes(pids) / len(pids) / MB
    progress(
        f"{side}: idle {cpu_pct:.2f} % CPU per node over {idle:.0f} s, RSS {rss_mb:.1f} MB per node"
    )
    return cpu_pct, rss_mb


def _measure_idle(plan: Plan, pids: list[int], result: SideResult, side: str) -> None:
    result.idle_cpu_pct, result.rss_mb = measure_idle(pids, plan.idle, side)


def _quiet_gap(t0: float, gap: float) -> None:
    """Sleep until ``gap`` seconds after ``t0`` (at least 0.5 s from now)."""
    time.sleep(max(0.5, t0 + gap - time.time()))


def _round_line(side: str, r: int, origin: int, delays: list[float], n: int, extra: str) -> None:
    if delays:
        stats = f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    else:
        stats = "no delivery"
    progress(
        f"{side}: round {r} from node {origin}: {len(delays)}/{n - 1} delivered, {stats}{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="idle CPU window, s")
    parser.add_argument(
        "--gap", type=float, default=5.0, help="time from one broadcast to the next, s"
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="per broadcast, s")
    parser.add_argument("--start-timeout", type=float, default=None)
    parser.add_argument("--converge-timeout", type=float, default=90.0)
    parser.add_argument("--only", choices=("ours", "serf"), default=None)
    parser.add_argument("--seed", type=int, default=None, help="for the choice of origins")
    parser.add_argument("--keep", action="store_true", help="keep the logs' temp dir")
    parser.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="extra MeshConfig override for our agents (e.g. eager_push=false, for A/B)",
    )
    parser.add_argument(
        "--agent", default=None, help="command for our agent (default: python -m mesh.agent)"
    )
    args = parser.parse_args()
    if args.nodes < 2 or args.rounds < 1:
        parser.error("need --nodes >= 2 and --rounds >= 1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-mesh-vs-serf-"))
    plan = Plan(
        nodes=args.nodes,
        rounds=args.rounds,
        idle=args.idle,
        gap=args.gap,
        timeout=args.timeout,
        start_timeout=args.start_timeout or 30.0 + 1.0 * args.nodes,
        converge_timeout=args.converge_timeout,
        rng=random.Random(args.seed),
        workdir=workdir,
        agent=shlex.split(args.agent) if args.agent else None,
        ours_set=args.ours_set,
    )
    progress(f"{machine()}; {args.nodes} nodes, {args.rounds} rounds; work dir {workdir}")
    started = time.monotonic()
    ours = serf = None
    with bench_session(workdir, keep=args.keep, errors=(RuntimeError,), kept="logs kept in"):
        if args.only in (None, "ours"):
            ours = run_ours(plan)
        if args.only in (None, "serf"):
            serf = run_serf(plan)
    result: dict[str, Any] = {"nodes": args.nodes, "rounds": args.rounds}
    result |= ours.summary("ours") if ours else {"ours_median_s": None, "ours_max_s": None}
    result |= serf.summary("serf") if serf else {"serf_median_s": None, "serf_max_s": None}
    om, sm = result["ours_median_s"], result["serf_median_s"]
    result["ratio_median"] = round(om / sm, 3) if om is not None and sm else None
    result |= {
        "ours_rss_mb": round(ours.rss_mb, 1) if ours else None,
        "serf_rss_mb": round(serf.rss_mb, 1) if serf else None,
        "ours_idle_cpu_pct": round(ours.idle_cpu_pct, 3) if ours else None,
        "serf_idle_cpu_pct": round(serf.idle_cpu_pct, 3) if serf else None,
        "ours_bytes_per_node": (
            round(ours.bytes_per_node) if ours and ours.bytes_per_node is not None else None
        ),
        "ours_bg_bytes_per_node_s": (
            round(ours.bg_bytes_per_node_s)
            if ours and ours.bg_bytes_per_node_s is not None
            else None
        ),
        "ours_missed": ours.missed if ours else None,
        "serf_missed": serf.missed if serf else None,
        "serf_origin_handler_s": (
            round(statistics.median(serf.origin_lags), 4) if serf and serf.origin_lags else None
        ),
        "caveats": [SERF_HANDLER_CAVEAT, SERF_COALESCE_CAVEAT] if serf else [],
    }
    progress(f"done in {time.monotonic() - started:.0f} s")
    emit(result)


if __name__ == "__main__":
    main()
