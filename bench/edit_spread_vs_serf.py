"""An edit's spread to 50 nodes vs serf's user event:
``uv run python -m bench.edit_spread_vs_serf --nodes 50``.

In one invocation, one after the other (never at once: they would compete for the two
cores), on 127.0.0.1 only:

1. **Ours**: N real nodes (``nxmesh init`` / ``join`` / ``run``, ``--nginx render-only
   --preset lan``), started one at a time (each ``join`` and ``run`` waits for the one
   before; one invite with N-1 uses), all joining through node 1. Start-up is timed per
   node; once every node sees all N alive, idle CPU and RSS per daemon are measured. One
   upstream is created; then ``--rounds`` rounds, each a ``POST`` of a new vhost on the
   API socket of a random node. ``t0`` is the acknowledgement (the issue's starting
   point): the edit is committed, fsynced and handed to the mesh, and the origin's
   daemon stamps its ``change`` watch event as it answers. That stamp is used rather
   than the moment the answer reached the bench, which lags it by tens of ms when 50
   daemons share two cores (``answer_p50_s``); ``ours_from_post_median_s`` counts from
   just before the POST was sent.
2. **Serf**: N Debian ``serf agent`` processes, default LAN profile, started and measured
   by :func:`bench.mesh_vs_serf.serf_mesh` (the same code as ``bench.mesh_vs_serf``);
   each round one user event (RPC, Coalesce=false) from a random node. ``t0`` is just
   before the RPC request was written; a node's time is when its event handler ran.

**How our side is observed.** The bench holds ``GET /v1/watch`` open on every node
(newline-delimited JSON; every event stamped ``at`` by the daemon that emits it, with
the same wall clock as ``t0``). For node i in a round:

- ``applied``: the ``apply`` event on i's own stream - i rendered the new state and its
  applier reported it; the daemon then publishes its metadata (``NodeMeta.state``, the
  digest of the desired state applied) from its metadata loop, which coalesces
  publications 0.2 s apart. So ``applied`` is a *lower bound* of the publication.
- ``published``: the earliest ``member`` event about i carrying the new digest on *any
  other* node's stream - the first moment anyone outside i saw it. An *upper bound* of
  the publication (metadata rides the gossip queue: up to a gossip interval, 200 ms, or
  a probe later). **This is the headline**: it is observed from outside the node, and
  it never flatters us.
- ``observer``: what one node (node 1, say a TUI there) sees: its ``member`` event about
  i with the new digest (for node 1 itself: its own ``published``). Its view lags
  every other node's publication by at least one more gossip hop.

The new digest is read from the origin's ``/v1/status`` once the origin applied; a round
is complete when every node was seen with it (bounded by ``--timeout``; late nodes are
counted in ``*_missed``).

Per round, the *spread time* is the last of the N nodes (``t100``); medians are over
rounds, for both sides (serf: the last of its N handlers, the origin's included). The
median over all (node, round) pairs is given too (``*_node_median_s``).

Profile (medians over all node-rounds): ``spread_s`` (``t0`` to the ``document`` event:
the update reached and was applied to i's replica), ``debounce_apply_s`` (``document`` to
``apply``: nothing for an edit after a quiet spell - the applier's leading edge, and no
splay in render-only mode - then one pipeline pass), ``pass_mean_s`` (the pass alone: every node's
``nxmesh_nginx_apply_duration_seconds``, sum/count over the rounds), ``meta_gossip_s``
(``applied`` to ``published``).

JSON keys (last line): ``nodes, ours_median_s, serf_median_s, ratio_median`` then
details (``rounds, ours_max_s, serf_max_s, ours_applied_median_s,
ours_observer_median_s, ours_node_median_s, serf_node_median_s, ours_missed,
serf_missed, profile, ours_start, ours_rss_mb, serf_rss_mb, ours_idle_cpu_pct,
serf_idle_cpu_pct, ours_round_cpu_s, serf_round_cpu_s, post_p50_s, answer_p50_s,
ours_from_post_median_s, preset, machine, code``; each side's ``*_start`` holds
``rounds_load``, the machine's load while its rounds ran). ``*_round_cpu_s`` is the CPU
time all N processes spent per round, less their idle rate: on two cores a spread cannot
end sooner than half of it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import UnixApi, UnixHTTPConnection, ensure_upstream, vhost_body, workspace_id
from bench.edit_to_served import histogram_totals
from bench.mesh_vs_serf import measure_idle, serf_mesh
from bench.procs import MachineLoad, bench_session, code_version, total_cpu_seconds
from bench.report import emit, machine, percentile, progress
from node.localmesh import LocalNode, NodeProcessError, nxmesh, until

APPLY = "nxmesh_nginx_apply_duration_seconds"


class Watch(threading.Thread):
    """One node's ``/v1/watch`` stream, parsed into :attr:`events` (under ``cond``)."""

    def __init__(self, name: str, socket_path: Path, cond: threading.Condition) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.node = name
        self.cond = cond
        self.events: list[dict[str, Any]] = []
        self.error: str | None = None
        self.ready = threading.Event()
        self.stopping = False
        self._conn = UnixHTTPConnection(socket_path, timeout=60.0)

    def run(self) -> None:
        try:
            self._conn.request("GET", "/v1/watch")
            response = self._conn.getresponse()
            if response.status != 200:
                self.error = f"watch answered {response.status}"
                return
            while True:
                line = response.readline()
                if not line:
                    self.error = "the stream ended"
                    break
                event = json.loads(line)
                if event.get("type") == "overflow":
                    self.error = "the stream overflowed (the bench fell behind)"
                with self.cond:
                    self.events.append(event)
                    if event.get("type") == "hello":
                        self.ready.set()
                    self.cond.notify_all()
        except (OSError, ValueError, AttributeError, http.client.HTTPException) as exc:
            self.error = repr(exc)
        finally:
            self.ready.set()
            with self.cond:
                self.cond.notify_all()

    def stop(self) -> None:
        self.stopping = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


@dataclass
class OursRound:
    origin: int
    t0: float
    """The acknowledgement: the ``at`` of the origin's ``change`` event (stamped by the
    daemon as it answers the POST), else the moment the POST returned here."""
    post_s: float
    """From just before the POST was sent here to ``t0``."""
    returned_s: float
    """From ``t0`` until the POST's answer reached this process."""
    applied: dict[int, float] = field(default_factory=dict)
    published: dict[int, float] = field(default_factory=dict)
    observer: dict[int, float] = field(default_factory=dict)
    document: dict[int, float] = field(default_factory=dict)


@dataclass
class OursResult:
    rounds: list[OursRound] = field(default_factory=list)
    missed: int = 0
    start: dict[str, Any] = field(default_factory=dict)
    rss_mb: float = 0.0
    idle_cpu_pct: float = 0.0
    pass_mean_s: float | None = None
    round_cpu_s: float | None = None


@dataclass
class SerfResult:
    t100: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    missed: int = 0
    rss_mb: float = 0.0
    idle_cpu_pct: float = 0.0
    round_cpu_s: float | None = None
    start: dict[str, Any] = field(default_factory=dict)


def round_cpu(pids: list[int], before: float, since: float, idle_pct: float, rounds: int) -> float:
    """CPU seconds all of ``pids`` spent per round since ``since`` (monotonic), less what
    they would have spent idle in that time (``idle_pct`` per process)."""
    used = total_cpu_seconds(pids) - before
    idle = idle_pct / 100 * len(pids) * (time.monotonic() - since)
    return round(max(0.0, used - idle) / rounds, 3)


# --------------------------------------------------------------------------- ours


def start_nodes(
    root: Path, n: int, preset: str, nodes: list[LocalNode], stagger: float, converge: float
) -> dict[str, Any]:
    """Start N render-only nodes one at a time into ``nodes`` (appended before each
    starts, so that the caller stops whatever started, also on failure); wait (bounded)
    until every node sees all N alive. Returns the start-up figures."""
    extra = ("--nginx", "render-only", "--preset", preset)
    t_begin = time.monotonic()
    first = LocalNode("n1", root)
    nxmesh("init", *first.identity_args(), *extra)
    nodes.append(first)
    t = time.monotonic()
    first.start()
    starts = [time.monotonic() - t]
    joins: list[float] = []
    if n > 1:
        token = first.cli("invite", "--uses", str(n - 1), "--ttl", "2h").stdout.strip()
    for i in range(2, n + 1):
        node = LocalNode(f"n{i}", root)
        t = time.monotonic()
        nxmesh("join", token, *node.identity_args(), *extra)
        joins.append(time.monotonic() - t)
        nodes.append(node)
        t = time.monotonic()
        node.start()
        starts.append(time.monotonic() - t)
        if i % 10 == 0 or i == n:
            progress(f"ours: {i} nodes running after {time.monotonic() - t_begin:.0f} s")
        time.sleep(stagger)
    all_running = time.monotonic() - t_begin

    def converged() -> bool:
        time.sleep(1.0)  # one look a second: up to N API calls a look
        return all(node.alive_members() == n for node in nodes)

    try:
        until(converged, f"every one of {n} nodes to see all alive", converge)
    except NodeProcessError:
        seen = sorted(node.alive_members() for node in nodes)
        raise RuntimeError(
            f"ours: not converged in {converge:.0f} s: alive members seen per node "
            f"range {seen[0]}..{seen[-1]} of {n}"
        ) from None
    converged_s = time.monotonic() - t_begin
    progress(f"ours: every node sees all {n} alive after {converged_s:.0f} s")
    return {
        "all_running_s": round(all_running, 1),
        "converged_s": round(converged_s, 1),
        "join_median_s": round(statistics.median(joins), 3) if joins else None,
        "join_max_s": round(max(joins), 3) if joins else None,
        "run_median_s": round(statistics.median(starts), 3),
        "run_max_s": round(max(starts), 3),
        "stagger_s": stagger,
    }


def stop_nodes(nodes: list[LocalNode], grace: float = 20.0) -> None:
    """SIGTERM every node at once (each announces its leave, which takes a few seconds),
    wait (bounded), SIGKILL the rest; then reap any nginx left behind."""
    procs = [n.process for n in nodes if n.process is not None]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
    for node in nodes:
        node.process = None
        node.reap_nginx()


class Observed:
    """What the watch streams said since a round began, read incrementally."""

    def __init__(self, watches: list[Watch]) -> None:
        self.watches = watches
        self.names = {w.node: i for i, w in enumerate(watches)}
        self.cursors = [len(w.events) for w in watches]
        self.applied: dict[int, float] = {}
        self.document: dict[int, float] = {}
        self.change: dict[int, float] = {}
        """node -> ``at`` of its first ``change`` event: an edit acknowledged there."""
        self.seen: dict[tuple[int, str], float] = {}
        """(node, digest) -> earliest ``at`` on another node's stream."""
        self.observer: dict[tuple[int, str], float] = {}
        """(node, digest) -> ``at`` on the observer's (node 0's) stream."""

    def scan(self) -> None:
        for i, watch in enumerate(self.watches):
            with watch.cond:
                new = watch.events[self.cursors[i] :]
                self.cursors[i] += len(new)
            for event in new:
                kind, at = event.get("type"), event.get("at")
                if not isinstance(at, int | float):
                    continue
                if kind == "apply" and event.get("state") in ("ok", "quarantined"):
                    self.applied.setdefault(i, float(at))
                elif kind == "document":
                    self.document.setdefault(i, float(at))
                elif kind == "change":
                    self.change.setdefault(i, float(at))
                elif kind == "member":
                    j = self.names.get(str(event.get("node")))
                    digest = (event.get("metadata") or {}).get("state")
                    if j is None or j == i or not isinstance(digest, str):
                        continue
                    key = (j, digest)
                    self.seen[key] = min(self.seen.get(key, float(at)), float(at))
                    if i == 0:
                        self.observer.setdefault(key, float(at))


def ours_round(
    nodes: list[LocalNode],
    watches: list[Watch],
    base: str,
    upstream: str,
    origin: int,
    name: str,
    timeout: float,
) -> tuple[OursRound, int]:
    """One edit on ``origin``; (what was observed, how many nodes were not seen with the
    new digest within ``timeout``)."""
    n = len(nodes)
    api = UnixApi(nodes[origin].state / "api.sock")
    try:
        api.call("GET", "/v1/status")  # connected before the clock starts
        obs = Observed(watches)
        t_post = time.time()
        api.call("POST", base, vhost_body(name, f"{name}.spread.bench.test", upstream))
        t_returned = time.time()
        deadline = time.monotonic() + timeout
        digest: str | None = None
        while time.monotonic() < deadline:
            obs.scan()
            if digest is None and origin in obs.applied:
                digest = str(api.call("GET", "/v1/status")["apply"]["state"])
            if digest is not None and len(obs.applied) == n:
                published = [(j, digest) in obs.seen for j in range(n)]
                observed = [(j, digest) in obs.observer for j in range(1, n)]
                if all(published) and all(observed):
                    break
            time.sleep(0.05)
        obs.scan()
    finally:
        api.close()
    t0 = obs.change.get(origin, t_returned)
    rnd = OursRound(origin, t0, t0 - t_post, t_returned - t0)
    rnd.applied = {i: t - t0 for i, t in obs.applied.items()}
    rnd.document = {i: t - t0 for i, t in obs.document.items()}
    if digest is not None:
        rnd.published = {j: t - t0 for (j, d), t in obs.seen.items() if d == digest}
        rnd.observer = {j: t - t0 for (j, d), t in obs.observer.items() if d == digest}
        if 0 in rnd.published:
            rnd.observer[0] = rnd.published[0]
    return rnd, n - len(rnd.published)


def run_ours(args: argparse.Namespace, root: Path, rng: random.Random) -> OursResult:
    n = args.nodes
    result = OursResult()
    nodes: list[LocalNode] = []
    watches: list[Watch] = []
    try:
        result.start = start_nodes(root, n, args.preset, nodes, args.stagger, args.converge)
        pids = [node.process.pid for node in nodes if node.process is not None]
        result.idle_cpu_pct, result.rss_mb = measure_idle(pids, args.idle, "ours")
        first = UnixApi(nodes[0].state / "api.sock")
        ws = workspace_id(first)
        upstream = ensure_upstream(first, ws)
        first.close()
        base = f"/v1/workspaces/{ws}/vhosts"
        cond = threading.Condition()
        watches = [Watch(node.name, node.state / "api.sock", cond) for node in nodes]
        for w in watches:
            w.start()
        for w in watches:
            w.ready.wait(timeout=10)
        broken = [w.node for w in watches if w.error or not w.ready.is_set()]
        if broken:
            raise RuntimeError(f"no watch stream from {', '.join(broken)}")
        time.sleep(args.gap)  # the upstream applied everywhere
        before = {node.name: histogram_totals(node, (APPLY,))[APPLY] for node in nodes}
        token = f"{rng.randrange(1 << 32):08x}"
        load = MachineLoad().start()
        cpu_before, cpu_since = total_cpu_seconds(pids), time.monotonic()
        for r in range(args.rounds):
            for node in nodes:
                if node.process is None or node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} is no longer running:\n{node.tail()}")
            origin = rng.randrange(n)
            rnd, missed = ours_round(
                nodes, watches, base, upstream, origin, f"r{r}-{token}", args.timeout
            )
            result.rounds.append(rnd)
            result.missed += missed
            line = f"ours: round {r} on {nodes[origin].name}: "
            for label, got in (
                ("applied", rnd.applied),
                ("published", rnd.published),
                ("observer", rnd.observer),
            ):
                if len(got) == n:
                    line += f"{label} all {max(got.values()):.3f} s, "
                else:
                    line += f"{label} {len(got)}/{n}, "
            progress(
                line + f"POST to ack {rnd.post_s * 1000:.0f} ms, ack to answer "
                f"{rnd.returned_s * 1000:.0f} ms"
            )
            time.sleep(max(0.5, rnd.t0 + args.gap - time.time()))
        result.round_cpu_s = round_cpu(
            pids, cpu_before, cpu_since, result.idle_cpu_pct, args.rounds
        )
        result.start["rounds_load"] = load.stop().summary()
        after = {node.name: histogram_totals(node, (APPLY,))[APPLY] for node in nodes}
        total = sum(after[k][0] - before[k][0] for k in after)
        count = sum(after[k][1] - before[k][1] for k in after)
        result.pass_mean_s = round(total / count, 4) if count else None
        errors = [f"{w.node}: {w.error}" for w in watches if w.error]
        if errors:
            raise RuntimeError(f"watch streams failed: {'; '.join(errors[:3])}")
        return result
    finally:
        for w in watches:
            w.stop()
        stop_nodes(nodes)


# --------------------------------------------------------------------------- serf


def run_serf(args: argparse.Namespace, workdir: Path, rng: random.Random) -> SerfResult:
    n = args.nodes
    result = SerfResult()
    with serf_mesh(
        n,
        workdir,
        rng=rng,
        start_timeout=30.0 + n,
        converge_timeout=args.converge,
    ) as mesh:
        result.start = {"up_s": round(mesh.up_s, 1), "converged_s": round(mesh.converged_s, 1)}
        result.idle_cpu_pct, result.rss_mb = measure_idle(mesh.pids, args.idle, "serf")
        token = f"{rng.randrange(1 << 40):x}"
        load = MachineLoad().start()
        cpu_before, cpu_since = total_cpu_seconds(mesh.pids), time.monotonic()
        for r in range(args.rounds):
            origin = rng.randrange(n)
            name = f"spread-{token}-r{r}"
            t0 = mesh.event(origin, name)
            got = mesh.wait_deliveries(name, n, args.timeout)
            delays = [t - t0 for t in got.values()]
            result.deliveries += delays
            if len(got) == n:
                result.t100.append(max(delays))
                progress(f"serf: round {r} from s{origin}: all {n} in {max(delays):.3f} s")
            else:
                result.missed += n - len(got)
                progress(f"serf: round {r} from s{origin}: only {len(got)}/{n}")
            time.sleep(max(0.5, t0 + args.gap - time.time()))
        result.round_cpu_s = round_cpu(
            mesh.pids, cpu_before, cpu_since, result.idle_cpu_pct, args.rounds
        )
        result.start["rounds_load"] = load.stop().summary()
    return result


# --------------------------------------------------------------------------- report


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarize(
    args: argparse.Namespace, ours: OursResult | None, serf: SerfResult | None
) -> dict[str, Any]:
    n = args.nodes
    result: dict[str, Any] = {"nodes": n}

    def t100(pick: str) -> list[float]:
        assert ours is not None
        out = []
        for rnd in ours.rounds:
            got: dict[int, float] = getattr(rnd, pick)
            if len(got) == n:
                out.append(max(got.values()))
        return out

    def per_node(pick: str) -> list[float]:
        assert ours is not None
        return [t for rnd in ours.rounds for t in getattr(rnd, pick).values()]

    published = t100("published") if ours else []
    result["ours_median_s"] = _median(published)
    result["serf_median_s"] = _median(serf.t100) if serf else None
    om, sm = result["ours_median_s"], result["serf_median_s"]
    result["ratio_median"] = round(om / sm, 3) if om is not None and sm else None
    result["rounds"] = args.rounds
    result["ours_max_s"] = round(max(published), 4) if published else None
    result["serf_max_s"] = round(max(serf.t100), 4) if serf and serf.t100 else None
    if ours:
        result["ours_applied_median_s"] = _median(t100("applied"))
        result["ours_observer_median_s"] = _median(t100("observer"))
        result["ours_node_median_s"] = _median(per_node("published"))
        result["ours_applied_node_median_s"] = _median(per_node("applied"))
        spread, wait, gossip = [], [], []
        for rnd in ours.rounds:
            for i, at in rnd.applied.items():
                if i in rnd.document:
                    spread.append(rnd.document[i])
                    wait.append(at - rnd.document[i])
                if i in rnd.published:
                    gossip.append(rnd.published[i] - at)
        result["profile"] = {
            "spread_s": _median(spread),
            "spread_max_s": round(max(spread), 4) if spread else None,
            "debounce_apply_s": _median(wait),
            "debounce_apply_max_s": round(max(wait), 4) if wait else None,
            "pass_mean_s": ours.pass_mean_s,
            "meta_gossip_s": _median(gossip),
            "meta_gossip_p90_s": round(percentile(gossip, 90), 4) if gossip else None,
        }
        result["post_p50_s"] = _median([rnd.post_s for rnd in ours.rounds])
        result["answer_p50_s"] = _median([rnd.returned_s for rnd in ours.rounds])
        from_post = []
        for rnd in ours.rounds:
            if len(rnd.published) == n:
                from_post.append(rnd.post_s + max(rnd.published.values()))
        result["ours_from_post_median_s"] = _median(from_post)
    if serf:
        result["serf_node_median_s"] = _median(serf.deliveries)
    result["ours_missed"] = ours.missed if ours else None
    result["serf_missed"] = serf.missed if serf else None
    result["ours_start"] = ours.start if ours else None
    result["serf_start"] = serf.start if serf else None
    result["ours_rss_mb"] = round(ours.rss_mb, 1) if ours else None
    result["serf_rss_mb"] = round(serf.rss_mb, 1) if serf else None
    result["ours_idle_cpu_pct"] = round(ours.idle_cpu_pct, 3) if ours else None
    result["serf_idle_cpu_pct"] = round(serf.idle_cpu_pct, 3) if serf else None
    result["ours_round_cpu_s"] = ours.round_cpu_s if ours else None
    result["serf_round_cpu_s"] = serf.round_cpu_s if serf else None
    result["preset"] = args.preset
    result["machine"] = machine()
    result["code"] = code_version()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--preset", choices=("lan", "wan", "local"), default="lan")
    parser.add_argument("--gap", type=float, default=3.0, help="from one edit to the next, s")
    parser.add_argument("--timeout", type=float, default=20.0, help="per round, s")
    parser.add_argument("--idle", type=float, default=10.0, help="idle CPU window, s")
    parser.add_argument("--stagger", type=float, default=0.0, help="pause between starts, s")
    parser.add_argument("--converge", type=float, default=180.0, help="convergence bound, s")
    parser.add_argument("--only", choices=("ours", "serf"), default=None)
    parser.add_argument("--seed", type=int, default=None, help="for the choice of origins")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    if not 2 <= args.nodes <= 200 or not 1 <= args.rounds <= 200:
        parser.error("need 2 <= --nodes <= 200 and 1 <= --rounds <= 200")
    workdir = Path(tempfile.mkdtemp(prefix="bench-spread-"))
    progress(f"{machine()}; {args.nodes} nodes, {args.rounds} rounds; work dir {workdir}")
    rng = random.Random(args.seed)
    started = time.monotonic()
    ours = serf = None
    with bench_session(workdir, keep=args.keep, errors=(RuntimeError, NodeProcessError, OSError)):
        if args.only in (None, "ours"):
            ours_root = workdir / "ours"
            ours_root.mkdir()
            ours = run_ours(args, ours_root, rng)
        if args.only in (None, "serf"):
            serf = run_serf(args, workdir, rng)
    progress(f"done in {time.monotonic() - started:.0f} s")
    emit(summarize(args, ours, serf))


if __name__ == "__main__":
    main()
