"""What the lab checks, as pure functions over what it recorded (no I/O here except
:func:`take_view`, one node's answers).

**Convergence** (:func:`compare`): every live node answers the same documents (every
edited collection, organizations and workspaces, compared whole), publishes the same
applied desired-state digest with its apply state ``ok`` and nginx running, and sees
every other live node ``alive`` and every revoked one ``revoked``.

**Edits** (:func:`audit_edits`). A write's *ancestry* is its own token plus, for every
value of the same field its node had answered with before the write began, that value's
ancestry. A node's document only grows (what it answered with was persisted before it
answered), so everything in a write's ancestry was integrated *before* it on that node,
hence before it on every replica: the final value of the field can never be a strict
ancestor of an acknowledged write. That is the loss test:

- *lost*: an acknowledged write whose field ends with a value from its ancestry (it
  was overwritten by something it had itself overwritten), and an acknowledged creation
  that is missing;
- *superseded*: any other acknowledged write whose value is not the final one - by a
  later write (it is in that write's ancestry) or a concurrent one (in neither
  ancestry; docs/state.md: the higher client id wins);
- *phantom*: a final value written by a request that was refused;
- *unexplained*: a final value no request ever carried.

Writes acknowledged by a node while it was isolated and then revoked are *forfeited*:
a revoked node's updates are refused for good, by design.

**False suspicions** (:func:`judge`): "dead" events from all watch streams, grouped per
subject into declarations (events less than ``gap`` apart). A declaration is explained
when, within ``bound`` seconds before one of its events, a fault impaired the subject's
or that event's observer's reachability (partition sides, loss, killed, paused or
crashed daemons, a revoked node). Anything else is a live, reachable node declared dead:
a false suspicion.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.faultlab.model import (
    FIELDS,
    MISSING,
    WORKSPACE,
    Edit,
    FaultRecord,
    MemberEvent,
    Observation,
    token_of,
)
from bench.faultlab.nodes import LabNode

MESH_COLLECTIONS = ("organizations", "workspaces")
"""Compared too (the mesh document's content the API shows), but not edited."""

__all__ = [
    "EditAudit",
    "NodeView",
    "SuspicionReport",
    "audit_edits",
    "compare",
    "judge",
    "take_view",
]


@dataclass(frozen=True)
class NodeView:
    """What one node answered: its documents, applied state and member list."""

    name: str
    docs: dict[str, list[dict[str, Any]]]
    invalid: dict[str, Any]
    digest: str
    """sha256 over the documents as answered (ours, not the node's)."""
    applied: str
    """The desired-state digest of the tree its nginx serves (``apply.state``)."""
    apply: str
    nginx: str
    members: dict[str, str]

    def entity(self, kind: str, entity: str) -> dict[str, Any] | None:
        for item in self.docs.get(kind, []):
            if item.get("id") == entity:
                return item
        return None


def take_view(node: LabNode, timeout: float = 5.0) -> NodeView | str:
    """The node's view, or why it could not be read."""
    docs: dict[str, list[dict[str, Any]]] = {}
    invalid: dict[str, Any] = {}
    paths = {kind: f"/v1/workspaces/{WORKSPACE}/{kind}" for kind in FIELDS}
    paths.update({kind: f"/v1/{kind}" for kind in MESH_COLLECTIONS})
    for kind, path in paths.items():
        answer = node.api("GET", path, timeout=timeout)
        if not answer.ok or not isinstance(answer.body, dict):
            return f"{node.name}: GET {kind}: {answer.status} {answer.error or answer.body}"
        docs[kind] = sorted(answer.body.get("items", []), key=lambda e: str(e.get("id")))
        invalid[kind] = answer.body.get("invalid", [])
    status = node.api("GET", "/v1/status", timeout=timeout)
    members = node.api("GET", "/v1/nodes", timeout=timeout)
    if not status.ok or not members.ok:
        return f"{node.name}: status/nodes: {status.status} {members.status}"
    apply = status.body.get("apply", {}) if isinstance(status.body, dict) else {}
    blob = json.dumps({"docs": docs, "invalid": invalid}, sort_keys=True).encode()
    return NodeView(
        name=node.name,
        docs=docs,
        invalid=invalid,
        digest=hashlib.sha256(blob).hexdigest()[:16],
        applied=str(apply.get("state", "")),
        apply=str(apply.get("apply", "")),
        nginx=str(apply.get("nginx", "")),
        members={str(m["name"]): str(m["state"]) for m in members.body.get("items", [])},
    )


def compare(
    views: Sequence[NodeView], live: Iterable[str], revoked: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(why the documents and applied state differ, why the membership views differ);
    both empty once converged."""
    live, revoked = list(live), list(revoked)
    state: list[str] = []
    members: list[str] = []
    if not views:
        return ["no node answered"], ["no node answered"]
    if len({v.digest for v in views}) > 1:
        state.append("documents differ: " + ", ".join(f"{v.name}={v.digest}" for v in views))
    if len({v.applied for v in views}) > 1 or not views[0].applied:
        state.append("applied digests: " + ", ".join(f"{v.name}={v.applied}" for v in views))
    for v in views:
        if v.apply != "ok" or v.nginx != "running":
            state.append(f"{v.name}: apply {v.apply}, nginx {v.nginx}")
    for v in views:
        for name in live:
            if v.members.get(name) != "alive":
                members.append(f"{v.name} sees {name} {v.members.get(name, 'absent')}")
        for name in revoked:
            if v.members.get(name, "revoked") != "revoked":
                members.append(f"{v.name} sees revoked {name} {v.members[name]}")
    return state, members


# ---------------------------------------------------------------------- edits


@dataclass
class EditAudit:
    acked: int = 0
    refused: int = 0
    unknown: int = 0
    forfeited: int = 0
    present: int = 0
    superseded: int = 0
    superseded_concurrent: int = 0
    creations_acked: int = 0
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)


def audit_edits(
    edits: Sequence[Edit],
    observations: Sequence[Observation],
    final: NodeView,
    created: dict[str, str],
    forfeit: dict[str, float],
) -> EditAudit:
    """Check every write against the final documents (see the module docstring).

    ``created``: name -> id of acknowledged creations; ``forfeit``: node name -> time from
    which its writes are forfeited (it was isolated, then revoked)."""
    audit = EditAudit()

    def forfeited(e: Edit) -> bool:
        return e.node in forfeit and e.start >= forfeit[e.node] - 0.5

    by_key: dict[tuple[str, str, str], list[tuple[Edit, str]]] = defaultdict(list)
    for e in edits:
        if e.op == "error":
            continue
        if e.op != "init":
            if e.outcome == "acked":
                audit.acked += 1
                if forfeited(e):
                    audit.forfeited += 1
            elif e.outcome == "refused":
                audit.refused += 1
            else:
                audit.unknown += 1
        if e.op == "create":
            continue
        for name, token in e.tokens.items():
            by_key[(e.kind, e.entity, name)].append((e, token))
    seen: dict[tuple[str, str, str, str], tuple[list[float], list[str]]] = {}
    grouped: dict[tuple[str, str, str, str], list[Observation]] = defaultdict(list)
    for o in observations:
        grouped[(o.node, o.kind, o.entity, o.field)].append(o)
    for key, rows in grouped.items():
        rows.sort(key=lambda o: o.at)
        seen[key] = ([o.at for o in rows], [o.token for o in rows])

    for (kind, entity, name), writes in sorted(by_key.items()):
        stored = final.entity(kind, entity)
        final_token = token_of(kind, name, stored.get(name)) if stored is not None else MISSING
        writer = {token: e for e, token in writes}
        ancestry: dict[str, frozenset[str]] = {}
        for e, token in sorted(writes, key=lambda w: w[0].start):
            times, tokens = seen.get((e.node, kind, entity, name), ([], []))
            upto = bisect.bisect_right(times, e.start)
            acc: set[str] = {token}
            for observed in set(tokens[:upto]):
                origin = writer.get(observed)
                if origin is not None and origin.start < e.start and observed in ancestry:
                    acc |= ancestry[observed]
                else:
                    acc.add(observed)
            ancestry[token] = frozenset(acc)
        label = f"{kind}/{entity}.{name}"
        origin = writer.get(final_token)
        if origin is None:
            audit.unexplained.append(f"{label} = {final_token!r}: no request wrote it")
        elif origin.outcome == "refused":
            audit.phantom.append(
                f"{label} = {final_token!r}: written by refused edit #{origin.seq} on "
                f"{origin.node} ({origin.status} {origin.error[:120]})"
            )
        for e, token in writes:
            if e.op == "init" or e.outcome != "acked" or forfeited(e):
                continue
            if token == final_token:
                audit.present += 1
            elif final_token in ancestry[token]:
                audit.lost.append(
                    f"{label}: edit #{e.seq} on {e.node} acked at {e.end:.3f} wrote {token!r}, "
                    f"yet the field ends with {final_token!r}, which that node had answered "
                    f"with before the edit"
                )
            else:
                audit.superseded += 1
                if final_token not in ancestry or token not in ancestry[final_token]:
                    audit.superseded_concurrent += 1

    present = {str(v.get("name")): v for v in final.docs.get("vhosts", [])}
    for e in edits:
        if e.op != "create" or e.outcome != "acked" or forfeited(e):
            continue
        audit.creations_acked += 1
        item = present.get(e.entity)
        want = e.tokens["locations"]
        if item is None:
            audit.lost.append(f"vhost {e.entity} created on {e.node} (#{e.seq}) is missing")
        elif token_of("vhosts", "locations", item.get("locations")) != want:
            got = token_of("vhosts", "locations", item.get("locations"))
            audit.lost.append(f"vhost {e.entity} created with {want!r} holds {got!r}")
        elif created.get(e.entity) not in (None, "", item.get("id")):
            audit.lost.append(f"vhost {e.entity}: id {item.get('id')} != {created[e.entity]}")
    return audit


# ---------------------------------------------------------------------- suspicions


@dataclass
class SuspicionReport:
    declarations: int = 0
    """Death declarations seen (clusters of "dead" events about one subject)."""
    false: list[str] = field(default_factory=list)
    suspicions: int = 0
    unexplained_suspicions: list[str] = field(default_factory=list)


def _clusters(events: Sequence[MemberEvent], kind: str, gap: float) -> list[list[MemberEvent]]:
    out: list[list[MemberEvent]] = []
    by_subject: dict[str, list[MemberEvent]] = defaultdict(list)
    for e in events:
        if e.event == kind and e.subject and e.subject != e.observer:
            by_subject[e.subject].append(e)
    for subject_events in by_subject.values():
        subject_events.sort(key=lambda e: e.at)
        current: list[MemberEvent] = []
        for e in subject_events:
            if current and e.at - current[-1].at > gap:
                out.append(current)
                current = []
            current.append(e)
        if current:
            out.append(current)
    return out


def _explained(event: MemberEvent, faults: Sequence[FaultRecord], bound: float) -> bool:
    for f in faults:
        if event.subject not in f.touched and event.observer not in f.touched:
            continue
        if f.start - 1.0 <= event.at and (f.end is None or event.at - f.end <= bound):
            return True
    return False


def judge(
    events: Sequence[MemberEvent],
    faults: Sequence[FaultRecord],
    bound: float,
    *,
    gap: float = 5.0,
) -> SuspicionReport:
    """Count death declarations no fault explains within ``bound`` (module docstring)."""
    report = SuspicionReport()
    for cluster in _clusters(events, "dead", gap):
        report.declarations += 1
        if not any(_explained(e, faults, bound) for e in cluster):
            first = cluster[0]
            report.false.append(
                f"{first.subject} declared dead at {first.at:.3f} (first seen by "
                f"{first.observer}; {len(cluster)} event(s)) with no fault impairing it or "
                f"its observers in the {bound:g} s before"
            )
    for cluster in _clusters(events, "suspect", gap):
        report.suspicions += 1
        if not any(_explained(e, faults, bound) for e in cluster):
            first = cluster[0]
            report.unexplained_suspicions.append(
                f"{first.subject} suspected at {first.at:.3f} by {first.observer}"
            )
    return report
