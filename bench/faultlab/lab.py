"""The fault lab: build the namespaces and the mesh, run the plan's episodes under the
workload, heal, measure convergence, check everything, tear it all down.

One episode: the workload runs; the episode's faults are injected (some at an offset);
after its duration the workload pauses (edits under way finish or time out), every fault
is healed at once (iptables chains flushed, SIGCONT, killed daemons restarted, the disk
freed, a revoked node stopped and replaced by a newly joined one), and the lab polls the
live nodes until their documents, applied digests and member lists agree - the heal's
convergence time - or the convergence bound passes.

A daemon that exits on its own is a bug: recorded with its log, restarted, and the run
fails.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.faultlab.bounds import convergence_bound, suspicion_bound
from bench.faultlab.checker import (
    EditAudit,
    NodeView,
    SuspicionReport,
    audit_edits,
    compare,
    judge,
    take_view,
)
from bench.faultlab.model import FIELDS, WORKSPACE, Edit, FaultRecord, server_token, value_for
from bench.faultlab.net import NetLab, sweep_stale
from bench.faultlab.nodes import LabNode, NodeError
from bench.faultlab.plan import KINDS, Episode, Fault, Plan, make_plan
from bench.faultlab.watch import Watchers
from bench.faultlab.workload import Workload
from bench.report import percentile, progress

__all__ = ["LabConfig", "Report", "run_lab"]

INITIAL_UPSTREAMS = 3
INITIAL_VHOSTS = 6
POLL = 0.25


@dataclass
class LabConfig:
    seed: int = 1
    nodes: int = 6
    minutes: float = 10.0
    """Length of the fault phase (episodes start until it is over, and until every kind
    of fault has run)."""
    preset: str = "local"
    root: Path | None = None
    """Work directory (state directories, logs, report.json); a temporary one if None."""
    keep: bool = False
    """Keep a temporary work directory even when the run passed."""
    threads: int = 3
    disk_mb: int = 64
    log: Callable[[str], None] = progress


@dataclass
class Report:
    seed: int
    nodes: int
    preset: str
    minutes: float
    wall_minutes: float = 0.0
    episodes: int = 0
    faults: int = 0
    fault_kinds: dict[str, int] = field(default_factory=dict)
    edits: EditAudit = field(default_factory=EditAudit)
    suspicions: SuspicionReport = field(default_factory=SuspicionReport)
    heal_convergence: list[float | None] = field(default_factory=list)
    member_convergence: list[float | None] = field(default_factory=list)
    convergence_bound_s: float = 0.0
    suspicion_bound_s: float = 0.0
    crashes: list[str] = field(default_factory=list)
    http_mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    work_dir: str = ""

    @property
    def heal_timeouts(self) -> int:
        return sum(1 for c in self.heal_convergence if c is None)

    @property
    def passed(self) -> bool:
        return not self.failures() and not self.heal_timeouts

    def failures(self) -> list[str]:
        """Every reason this run failed, one line each (empty when it passed)."""
        return (
            self.problems
            + self.crashes
            + self.edits.lost
            + self.edits.phantom
            + self.edits.unexplained
            + self.suspicions.false
            + self.http_mismatches
        )

    def summary(self) -> dict[str, Any]:
        """The bench's JSON: the issue's keys first, then the detail."""
        done = [c for c in self.heal_convergence if c is not None]
        members = [c for c in self.member_convergence if c is not None]
        return {
            "minutes": self.minutes,
            "faults": self.faults,
            "edits_acked": self.edits.acked,
            "edits_lost": len(self.edits.lost),
            "heal_convergence_p50_s": round(percentile(done, 50), 2) if done else None,
            "heal_convergence_p99_s": round(percentile(done, 99), 2) if done else None,
            "false_suspicions": len(self.suspicions.false),
            "passed": self.passed,
            "seed": self.seed,
            "nodes": self.nodes,
            "preset": self.preset,
            "wall_minutes": round(self.wall_minutes, 2),
            "episodes": self.episodes,
            "fault_kinds": self.fault_kinds,
            "edits_refused": self.edits.refused,
            "edits_unknown": self.edits.unknown,
            "edits_forfeited": self.edits.forfeited,
            "edits_present": self.edits.present,
            "edits_superseded": self.edits.superseded,
            "edits_superseded_concurrent": self.edits.superseded_concurrent,
            "creations_acked": self.edits.creations_acked,
            "phantom_edits": len(self.edits.phantom),
            "unexplained_values": len(self.edits.unexplained),
            "heal_convergence_max_s": round(max(done), 2) if done else None,
            "heal_timeouts": self.heal_timeouts,
            "member_convergence_p50_s": round(percentile(members, 50), 2) if members else None,
            "member_convergence_p99_s": round(percentile(members, 99), 2) if members else None,
            "convergence_bound_s": self.convergence_bound_s,
            "suspicion_bound_s": self.suspicion_bound_s,
            "death_declarations": self.suspicions.declarations,
            "suspicions": self.suspicions.suspicions,
            "unexplained_suspicions": len(self.suspicions.unexplained_suspicions),
            "daemon_crashes": len(self.crashes),
            "http_mismatches": len(self.http_mismatches),
            "problems": [p if len(p) <= 400 else p[:400] + "..." for p in self.failures()[:20]],
        }


class _Lab:
    """One run; :func:`run_lab` is the way in."""

    def __init__(self, config: LabConfig, work: Path) -> None:
        self.config = config
        self.work = work
        self.log = config.log
        self.plan: Plan = make_plan(config.seed, config.nodes, config.minutes)
        self.net = NetLab(config.nodes)
        self.slots: list[LabNode] = []
        self.retired: list[LabNode] = []
        self.revoked: list[str] = []
        self.forfeit: dict[str, float] = {}
        self.records: list[FaultRecord] = []
        self.init_edits: list[Edit] = []
        self.entities: dict[str, dict[str, str]] = {k: {} for k in FIELDS}
        self._roster_lock = threading.Lock()
        self.watchers = Watchers()
        self.workload: Workload | None = None
        self.report = Report(config.seed, config.nodes, config.preset, config.minutes)
        members = config.nodes
        self.report.convergence_bound_s = convergence_bound(config.preset, members)
        self.report.suspicion_bound_s = suspicion_bound(config.preset, members)
        self._replacements = 0

    # ------------------------------------------------------------------ helpers

    def roster(self) -> list[LabNode]:
        with self._roster_lock:
            return list(self.slots)

    def names(self, slots: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(self.slots[s].name for s in slots)

    def problem(self, text: str) -> None:
        self.log(f"PROBLEM: {text}")
        self.report.problems.append(text)

    def check_processes(self) -> None:
        """A daemon that ended without being told to is a bug: record it and restart it."""
        for node in self.roster():
            if node.paused or node.process is None:
                continue
            code = node.exit_code()
            if code is None:
                continue
            now = time.time()
            text = f"{node.name}: the daemon exited on its own (status {code}) at {now:.3f}"
            self.log(f"CRASH: {text}; log tail:\n{node.tail(2500)}")
            self.report.crashes.append(f"{text}; see {node.log}")
            record = FaultRecord("crash", f"{node.name} exited {code}", now, (node.name,))
            self.records.append(record)
            node.process = None
            try:
                node.start()
            except NodeError as exc:
                node.process = None  # down until the next heal tries again
                self.problem(f"{node.name} could not be restarted after its crash: {exc}")
            record.end = time.time()

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_processes()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        stale = sweep_stale()
        if stale:
            self.log(f"removed what an earlier, killed lab left behind: {', '.join(stale)}")
        self.net.create()
        self.log(
            f"lab {self.net.tag}: bridge {self.net.bridge}, {self.config.nodes} namespaces on "
            f"{self.net.subnet}"
        )
        reach = LabNode("probe", 0, self.work, self.net).lab_probe({"reach": self.net.addresses})
        unreachable = [a for a, ok in reach["reach"].items() if not ok]
        if unreachable:
            raise NodeError(
                f"namespaces cannot reach {unreachable} over the bridge: is the root "
                "namespace's FORWARD chain dropping bridged packets (br_netfilter)?"
            )
        for slot in range(self.config.nodes):
            node = LabNode(f"n{slot + 1}", slot, self.work, self.net, self.config.preset)
            if slot == self.plan.disk_slot:
                node.mount_small_disk(self.config.disk_mb)
            self.slots.append(node)
        first = self.slots[0]
        first.init()
        first.start()
        # The others join at once (one invite each, through the first node), then run.
        tokens = [self._invite(first) for _ in self.slots[1:]]
        with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
            list(pool.map(LabNode.join, self.slots[1:], tokens))
        for node in self.slots[1:]:
            node.spawn()
        for node in self.slots[1:]:
            node.wait_ready()
        live = [n.name for n in self.slots]
        state_at, members_at, why = self.converge(time.time(), 90.0, need_state=False)
        if members_at is None:
            raise NodeError(f"the mesh did not form: {why}")
        self.log(f"mesh of {len(live)} up; disk fault node {self.slots[self.plan.disk_slot].name}")
        self.create_entities(first)
        state_at, members_at, why = self.converge(time.time(), 90.0)
        if state_at is None:
            raise NodeError(f"the initial state did not converge: {why}")
        for node in self.slots:
            self.watchers.watch(node)

    def _invite(self, via: LabNode) -> str:
        body = via.api_ok("POST", "/v1/invites", {"ttl": "1h", "uses": 1})
        return str(body["token"])

    def create_entities(self, node: LabNode) -> None:
        for i in range(INITIAL_UPSTREAMS):
            tokens = {"description": f"i-u{i}-d", "servers": server_token(0xFA0000 + i + 1)}
            body: dict[str, Any] = {"name": f"u{i}"}
            body.update({f: value_for("upstreams", f, t) for f, t in tokens.items()})
            self._create(node, "upstreams", body, tokens)
        for i in range(INITIAL_VHOSTS):
            tokens = {f: f"i-v{i}-{f[0]}" for f in FIELDS["vhosts"]}
            body = {"name": f"v{i}", "server_names": [f"v{i}.faults.test"]}
            body.update({f: value_for("vhosts", f, t) for f, t in tokens.items()})
            self._create(node, "vhosts", body, tokens)

    def _create(
        self, node: LabNode, kind: str, body: dict[str, Any], tokens: dict[str, str]
    ) -> None:
        start = time.time()
        created = node.api_ok("POST", f"/v1/workspaces/{WORKSPACE}/{kind}", body)
        entity = str(created["id"])
        self.entities[kind][entity] = str(body["name"])
        edit = Edit(0, node.name, "init", kind, entity, tokens, start, time.time(), 201, "acked")
        self.init_edits.append(edit)

    # ------------------------------------------------------------------ convergence

    def live_names(self) -> list[str]:
        return [n.name for n in self.roster()]

    def views(self) -> tuple[list[NodeView], list[str]]:
        views: list[NodeView] = []
        errors: list[str] = []
        nodes = self.roster()
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            answers = list(pool.map(take_view, nodes))
        for view in answers:
            if isinstance(view, str):
                errors.append(view)
            else:
                views.append(view)
        return views, errors

    def converge(
        self, since: float, timeout: float, *, need_state: bool = True
    ) -> tuple[float | None, float | None, list[str]]:
        """Poll until documents + applied state, and member lists, agree (each timed
        from ``since``) or ``timeout`` passes."""
        state_at: float | None = None
        members_at: float | None = None
        why: list[str] = []
        deadline = since + timeout
        while time.time() < deadline:
            self.check_processes()
            views, errors = self.views()
            now = time.time()
            if errors:
                why = errors
            else:
                state, members = compare(views, self.live_names(), self.revoked)
                if not state and state_at is None:
                    state_at = now - since
                if not members and members_at is None:
                    members_at = now - since
                why = state + members
                if members_at is not None and (state_at is not None or not need_state):
                    break
            time.sleep(POLL)
        return state_at, members_at, why

    # ------------------------------------------------------------------ faults

    def inject(self, fault: Fault, t0: float) -> FaultRecord | None:
        """Start ``fault`` now (its offset actions are scheduled by the caller)."""
        kind, slots, others = fault.kind, fault.slots, fault.others
        now = time.time()
        if kind == "partition":
            pairs = [(a, b) for a in slots for b in others] + [
                (b, a) for a in slots for b in others
            ]
            self.net.block(pairs)
            touched = self.names(slots + others)
            detail = f"{'+'.join(self.names(slots))} | {'+'.join(self.names(others))}"
        elif kind == "one_way":
            self.net.block([(a, b) for a in slots for b in others])
            touched = self.names(slots + others)
            detail = f"{'+'.join(self.names(slots))} -/-> {'+'.join(self.names(others))}"
        elif kind == "loss":
            for s in slots:
                self.net.lose(s, fault.probability)
            touched = self.names(slots)
            detail = f"{fault.probability:.0%} on {'+'.join(touched)}"
        elif kind == "kill9":
            self.slots[slots[0]].kill9()
            touched = self.names(slots)
            detail = f"kill -9 {touched[0]}"
        elif kind == "pause":
            self.slots[slots[0]].pause()
            touched = self.names(slots)
            detail = f"SIGSTOP {touched[0]}"
        elif kind == "disk_full":
            written = self.slots[slots[0]].fill_disk()
            touched = ()
            detail = f"disk of {self.names(slots)[0]} filled ({written >> 20} MiB)"
        elif kind == "revoke":
            target = slots[0]
            rest = [s for s in range(len(self.slots)) if s != target]
            self.net.block([(target, b) for b in rest] + [(b, target) for b in rest])
            touched = tuple(n.name for n in self.slots)
            detail = f"{self.names(slots)[0]} isolated, to be revoked via {self.names(others)[0]}"
            self.forfeit[self.slots[target].name] = now
        elif kind == "kill_nginx":
            return None  # at its offset, see kill_nginx()
        else:
            raise ValueError(kind)
        record = FaultRecord(kind, detail, now, touched)
        self.records.append(record)
        self.log(f"  + {kind}: {detail}")
        return record

    def kill_nginx(self, slot: int) -> None:
        node = self.slots[slot]
        killed = node.kill_nginx()
        record = FaultRecord("kill_nginx", f"nginx of {node.name} killed", time.time())
        record.end = record.start
        record.extra["killed"] = killed
        self.records.append(record)
        self.log(f"  + kill_nginx: {node.name} ({'killed' if killed else 'no nginx to kill'})")

    def revoke(self, fault: Fault) -> None:
        target, issuer = self.slots[fault.slots[0]], self.slots[fault.others[0]]
        answer = issuer.api("POST", f"/v1/nodes/{target.name}/revoke", timeout=10)
        if not answer.ok:
            self.problem(f"revoking {target.name} via {issuer.name}: {answer.status} {answer.body}")
            return
        self.revoked.append(target.name)
        self.log(f"  + revoked {target.name} through {issuer.name} while it is isolated")

    def replace(self, fault: Fault) -> None:
        """After the heal: the revoked node must be refused everywhere; stop it and join a
        new node (new key, new name) in its namespace."""
        slot = fault.slots[0]
        old, issuer = self.slots[slot], self.slots[fault.others[0]]
        if old.name not in self.revoked:
            return
        old.stop(wait=10)
        old.reap_nginx()
        self.watchers.forget(old.name)
        self.retired.append(old)
        self.records.append(FaultRecord("revoked", f"{old.name} gone", time.time(), (old.name,)))
        self._replacements += 1
        new = LabNode(f"n{slot + 1}r{self._replacements}", slot, self.work, self.net, old.preset)
        new.join(self._invite(issuer))
        new.start()
        with self._roster_lock:
            self.slots[slot] = new
        self.watchers.watch(new)
        self.log(f"  ~ {new.name} joined in {old.name}'s namespace")

    def heal(self, episode: Episode, records: list[FaultRecord]) -> float:
        """Undo every fault of the episode; returns when the heal began."""
        started = time.time()
        self.net.heal()
        for record in records:
            if record.kind in ("partition", "one_way", "loss", "revoke"):
                record.end = time.time()
        for fault in episode.faults:
            node = self.slots[fault.slots[0]]
            if fault.kind == "pause":
                node.resume()
            elif fault.kind == "disk_full":
                node.free_disk()
            elif fault.kind == "kill9":
                node.start()
        for node in self.roster():  # a crashed daemon that could not be restarted
            if node.process is None:
                node.start()
        for record in records:
            if record.end is None:
                record.end = time.time()
        for fault in episode.faults:
            if fault.kind == "revoke":
                self.replace(fault)
        return started

    def run_episode(self, episode: Episode) -> None:
        assert self.workload is not None
        kinds = ", ".join(f.kind for f in episode.faults)
        self.log(f"episode {episode.index}: {kinds} for {episode.duration:g} s")
        self.workload.resume()
        t0 = time.time()
        records: list[FaultRecord] = []
        actions: list[tuple[float, Callable[[], None]]] = []
        for fault in sorted(episode.faults, key=lambda f: f.kind != "revoke"):
            record = self.inject(fault, t0)
            if record is not None:
                records.append(record)
            if fault.kind == "kill_nginx":
                actions.append((t0 + fault.offset, partial(self.kill_nginx, fault.slots[0])))
            if fault.kind == "revoke":
                actions.append((t0 + fault.offset, partial(self.revoke, fault)))
        actions.sort(key=lambda a: a[0])
        deadline = t0 + episode.duration
        while time.time() < deadline or actions:
            while actions and actions[0][0] <= time.time():
                actions.pop(0)[1]()
            self.sleep(0.2)
            if time.time() > deadline + 30:
                break
        if not self.workload.pause():
            self.log("  (edits still under way after 15 s)")
        healed = self.heal(episode, records)
        state_at, members_at, why = self.converge(healed, self.report.convergence_bound_s)
        self.report.heal_convergence.append(state_at)
        self.report.member_convergence.append(members_at)
        if state_at is None or members_at is None:
            self.problem(f"episode {episode.index} ({kinds}) did not converge: {'; '.join(why)}")
        self.log(f"  healed: state converged in {_fmt(state_at)}, members in {_fmt(members_at)}")

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        config = self.config
        started = time.time()
        self.setup()
        self.log(f"set-up took {time.time() - started:.1f} s")
        self.workload = Workload(
            self.roster, self.entities, seed=config.seed, threads=config.threads
        )
        self.workload.start()
        phase = time.time()
        budget = config.minutes * 60
        ran: Counter[str] = Counter()
        for episode in self.plan.episodes:
            covered = all(ran[k] for k in KINDS)
            elapsed = time.time() - phase
            if elapsed >= budget and covered:
                break
            if elapsed >= 3 * budget + 120:
                self.problem(f"not every fault kind ran: {sorted(set(KINDS) - set(ran))}")
                break
            self.run_episode(episode)
            ran.update(f.kind for f in episode.faults)
            self.report.episodes += 1
        self.workload.close()
        self.report.fault_kinds = dict(sorted(ran.items()))
        self.report.faults = sum(ran.values())
        checked = time.time()
        self.final_check()
        self.log(f"final check took {time.time() - checked:.1f} s")
        self.report.wall_minutes = (time.time() - started) / 60

    def final_check(self) -> None:
        assert self.workload is not None
        state_at, members_at, why = self.converge(time.time(), self.report.convergence_bound_s)
        if state_at is None or members_at is None:
            self.problem(f"the final state did not converge: {'; '.join(why)}")
        views, errors = self.views()
        for error in errors:
            self.problem(error)
        if not views:
            return
        edits = self.init_edits + self.workload.edits
        self.report.edits = audit_edits(
            edits, self.workload.observations, views[0], self.workload.created, self.forfeit
        )
        for e in self.workload.edits:
            if e.op == "error":
                self.problem(f"workload error: {e.error}")
        events = self.watchers.snapshot()
        self.report.suspicions = judge(events, self.records, self.report.suspicion_bound_s)
        self.check_http(views[0])
        self.save(edits, events)

    def check_http(self, final: NodeView) -> None:
        """Every live node's nginx serves every virtual host's final text and header."""
        expected: dict[str, tuple[str, str | None]] = {}
        for v in final.docs.get("vhosts", []):
            text = str(v["locations"][0].get("text", ""))
            header = (v.get("response_headers") or {}).get("X-Fault")
            expected[str(v["server_names"][0])] = (text, header)
        hosts = sorted(expected)

        def serves(node: LabNode) -> str | None:
            wrong: list[str] = []
            for _attempt in range(5):
                answers = node.fetch(hosts)
                wrong = [
                    f"{host}: {a['status']} {a['body'][:40]!r} / {a['fault']!r}"
                    for host, a in zip(hosts, answers, strict=True)
                    if a["status"] != 200
                    or a["body"].strip() != expected[host][0]
                    or a["fault"] != expected[host][1]
                ]
                if not wrong:
                    return None
                time.sleep(2)
            return (
                f"{node.name}'s nginx: {len(wrong)} of {len(hosts)} hosts wrong, e.g. "
                + "; ".join(wrong[:3])
            )

        nodes = self.roster()
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for mismatch in pool.map(serves, nodes):
                if mismatch is not None:
                    self.report.http_mismatches.append(mismatch)

    def save(self, edits: list[Edit], events: list[Any]) -> None:
        data = {
            "summary": self.report.summary(),
            "plan": asdict(self.plan),
            "faults": [asdict(r) for r in self.records],
            "edits": [asdict(e) for e in edits],
            "events": [asdict(e) for e in events],
            "lost": self.report.edits.lost,
            "false_suspicions": self.report.suspicions.false,
            "unexplained_suspicions": self.report.suspicions.unexplained_suspicions,
            "crashes": self.report.crashes,
            "problems": self.report.problems,
        }
        (self.work / "report.json").write_text(json.dumps(data, indent=1, default=str))

    def teardown(self) -> None:
        """Stop every process, unmount, remove the network; never raises."""
        if self.workload is not None:
            with contextlib.suppress(Exception):
                self.workload.close()
        with contextlib.suppress(Exception):
            self.watchers.close()
        nodes = self.slots + self.retired
        for node in nodes:
            with contextlib.suppress(Exception):
                node.resume()
                if node.process is not None and node.process.poll() is None:
                    node.process.terminate()
        for node in nodes:
            with contextlib.suppress(Exception):
                node.stop(wait=15)
        for node in nodes:
            with contextlib.suppress(Exception):
                node.reap_nginx()
            with contextlib.suppress(Exception):
                node.unmount()
        self.net.destroy()
        left = self.net.leftovers()
        if left:
            self.report.problems.append(f"left behind after clean-up: {left}")


def _fmt(value: float | None) -> str:
    return "(timed out)" if value is None else f"{value:.1f} s"


def run_lab(config: LabConfig) -> Report:
    """Run the whole lab once; the report says what happened (see Report.passed)."""
    temporary = config.root is None
    work = Path(tempfile.mkdtemp(prefix="nxmesh-faults-")) if temporary else config.root
    assert work is not None
    work.mkdir(parents=True, exist_ok=True)
    lab = _Lab(config, work)
    lab.report.work_dir = str(work)
    try:
        lab.run()
    except Exception as exc:
        lab.problem(f"the lab stopped: {exc!r}")
    finally:
        begun = time.time()
        lab.teardown()
        config.log(f"clean-up took {time.time() - begun:.1f} s")
    if temporary and lab.report.passed and not config.keep:
        shutil.rmtree(work, ignore_errors=True)
        lab.report.work_dir = ""
    return lab.report
