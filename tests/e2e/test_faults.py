"""The fault lab (bench/faultlab, docs/faults.md).

- A short seeded run on real processes: five daemons, each with its own nginx, in their
  own network namespaces; every kind of fault (full and one-way partitions, packet loss,
  kill -9, nginx killed, a paused daemon, a full disk, a node revoked while partitioned)
  under concurrent edits on every side. It passes only if no acknowledged edit is lost,
  every heal converges within the bound, no reachable node is declared dead, every nginx
  serves the final state, no daemon dies on its own - and the lab leaves nothing behind.
- The checker's rules on hand-made histories: it must catch a lost edit, a phantom, a
  missing creation and a false death, and accept what the documented merge rules allow.
- The plan: seeded, covering, within its constraints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.faultlab import LabConfig, run_lab
from bench.faultlab.checker import NodeView, audit_edits, judge
from bench.faultlab.model import Edit, FaultRecord, MemberEvent, Observation
from bench.faultlab.net import PREFIX, NetLab
from bench.faultlab.plan import KINDS, make_plan

# ---------------------------------------------------------------------- the real thing


@pytest.mark.netns
@pytest.mark.nginx
@pytest.mark.slow
def test_a_short_seeded_fault_run_loses_no_edit_and_converges(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("fl")  # short: Unix socket paths are capped at 108 bytes
    report = run_lab(LabConfig(seed=7, nodes=5, minutes=0.8, root=work))
    summary = report.summary()
    detail = json.dumps(summary, indent=1)
    assert report.passed, detail
    assert set(summary["fault_kinds"]) == set(KINDS), detail
    assert summary["edits_lost"] == 0
    assert summary["false_suspicions"] == 0
    assert summary["edits_acked"] >= 20, detail
    assert summary["creations_acked"] > 0, detail
    assert summary["heal_convergence_p99_s"] <= summary["convergence_bound_s"]
    # Nothing of the lab is left (the lab also checks its own names: a leftover is a
    # problem, and the run would not have passed): no namespace of ours, no mount.
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in namespaces.split() if n.startswith(PREFIX) and f"-{os.getpid()}-" in n]
    assert str(work) not in Path("/proc/mounts").read_text()


# ---------------------------------------------------------------------- the checker


def _view(values: dict[str, str], vhosts: list[dict[str, Any]] | None = None) -> NodeView:
    """A final state holding one upstream ``u`` whose description is ``values["u"]``."""
    docs = {
        "upstreams": [{"id": "u", "name": "u", "description": values["u"]}],
        "vhosts": vhosts or [],
    }
    return NodeView("n1", docs, {}, "d", "a", "ok", "running", {})


def _edit(seq: int, node: str, token: str, start: float, outcome: str = "acked") -> Edit:
    op = "init" if seq == 0 else "patch"
    return Edit(seq, node, op, "upstreams", "u", {"description": token}, start, start + 0.1,
                200 if outcome == "acked" else 507, outcome)  # fmt: skip


def _seen(node: str, at: float, token: str) -> Observation:
    return Observation(node, at, "upstreams", "u", "description", token)


def test_an_edit_overwritten_by_a_value_it_had_seen_is_lost() -> None:
    edits = [_edit(0, "n1", "init", 0), _edit(1, "n2", "a", 10)]
    seen = [_seen("n2", 5, "init")]
    audit = audit_edits(edits, seen, _view({"u": "init"}), {}, {})
    assert len(audit.lost) == 1
    assert "edit #1 on n2" in audit.lost[0]


def test_concurrent_and_later_writes_supersede_without_loss() -> None:
    edits = [
        _edit(0, "n1", "init", 0),
        _edit(1, "n1", "a", 10),  # n1 and n2 both saw only init: concurrent
        _edit(2, "n2", "b", 10),
        _edit(3, "n3", "c", 20),  # n3 saw a: c is later than a, concurrent with b
    ]
    seen = [_seen("n1", 5, "init"), _seen("n2", 5, "init"), _seen("n3", 15, "a")]
    audit = audit_edits(edits, seen, _view({"u": "b"}), {}, {})
    assert audit.lost == []
    assert audit.present == 1
    assert audit.superseded == 2
    # ... but if the field ended with a, c (which had seen a) would be lost.
    assert len(audit_edits(edits, seen, _view({"u": "a"}), {}, {}).lost) == 1


def test_a_refused_value_in_the_final_state_is_a_phantom_and_an_unknown_one_unexplained() -> None:
    edits = [_edit(0, "n1", "init", 0), _edit(1, "n2", "r", 10, outcome="refused")]
    assert len(audit_edits(edits, [], _view({"u": "r"}), {}, {}).phantom) == 1
    assert len(audit_edits(edits, [], _view({"u": "zzz"}), {}, {}).unexplained) == 1
    # A timed-out edit may have been written: its value is explained.
    maybe = [_edit(0, "n1", "init", 0), _edit(1, "n2", "m", 10, outcome="unknown")]
    audit = audit_edits(maybe, [], _view({"u": "m"}), {}, {})
    assert not audit.phantom
    assert not audit.unexplained


def test_a_missing_creation_is_lost_unless_its_node_was_revoked() -> None:
    create = Edit(5, "n4", "create", "vhosts", "c5", {"locations": "t5"}, 10, 10.1, 201, "acked")
    edits = [_edit(0, "n1", "init", 0), create]
    assert len(audit_edits(edits, [], _view({"u": "init"}), {}, {}).lost) == 1
    forfeited = audit_edits(edits, [], _view({"u": "init"}), {}, {"n4": 5.0})
    assert forfeited.lost == []
    assert forfeited.forfeited == 1
    present = [{"id": "x", "name": "c5", "locations": [{"text": "t5"}]}]
    assert audit_edits(edits, [], _view({"u": "init"}, present), {}, {}).lost == []


def test_a_death_is_false_unless_a_fault_touched_the_node_within_the_bound() -> None:
    dead = [MemberEvent("n1", "n3", "dead", 100.0), MemberEvent("n2", "n3", "dead", 100.5)]
    assert len(judge(dead, [], 27.0).false) == 1
    partition = FaultRecord("partition", "n3 | rest", 50.0, ("n3", "n1"), end=80.0)
    assert judge(dead, [partition], 27.0).false == []
    long_ago = FaultRecord("partition", "n3 | rest", 10.0, ("n3", "n1"), end=20.0)
    assert len(judge(dead, [long_ago], 27.0).false) == 1
    # A stalled observer explains its own declaration.
    paused = FaultRecord("pause", "SIGSTOP n1", 90.0, ("n1",), end=95.0)
    assert judge(dead[:1], [paused], 27.0).false == []


# ---------------------------------------------------------------------- the plan


def test_the_plan_is_seeded_covering_and_within_its_constraints() -> None:
    assert make_plan(3, 6, 10) == make_plan(3, 6, 10)
    assert make_plan(3, 6, 10) != make_plan(4, 6, 10)
    for seed in range(30):
        for minutes in (1.2, 10):
            plan = make_plan(seed, 6, minutes)
            first = {f.kind for e in plan.episodes[:8] for f in e.faults}
            assert first == set(KINDS), (seed, minutes)
            if minutes < 4:  # a short run covers everything in its first three episodes
                assert {f.kind for e in plan.episodes[:3] for f in e.faults} == set(KINDS)
            for e in plan.episodes:
                kinds = [f.kind for f in e.faults]
                assert sum(k in ("partition", "one_way", "revoke") for k in kinds) <= 1
                assert sum(k in ("kill9", "pause") for k in kinds) <= 2
                for f in e.faults:
                    if f.kind == "disk_full":
                        assert f.slots == (plan.disk_slot,)
                    if f.kind == "revoke":
                        assert plan.disk_slot not in f.slots
                        assert f.others[0] != f.slots[0]


def test_lab_names_fit_linux_interface_names() -> None:
    lab = NetLab(7)
    assert len(lab.bridge) <= 15
    assert len(f"{PREFIX}{lab.tag}-h7") <= 15
    assert all(a.startswith("10.213.") for a in lab.addresses)
    assert len(set(lab.namespaces)) == 7
