"""Node metadata: per-workspace digests, the 512-byte limit, older peers."""

from __future__ import annotations

import msgpack

from mesh import META_MAX
from node.meta import NodeMeta, workspace_tag


def digests(n: int) -> dict[str, str]:
    return {f"ws{i:03d}{'x' * 22}": f"{i:08x}cafe" for i in range(n)}


def test_workspace_digests_travel_and_are_named_only_for_known_workspaces() -> None:
    applied = digests(3)
    meta = NodeMeta("n1", "1.0", workspaces=NodeMeta.digests(applied))
    back = NodeMeta.unpack(meta.pack())
    assert back is not None
    for ws, digest in applied.items():
        assert back.applied(ws) == digest[:8]
    assert back.applied("not-served") is None
    known = list(applied)[:2]
    shown = back.to_json(known)
    assert shown["workspaces"] == {ws: applied[ws][:8] for ws in known}
    assert shown["workspaces_unknown"] == 1
    assert shown["workspaces_complete"] is True


def test_too_many_workspaces_drop_labels_and_reason_first_then_digests() -> None:
    labels = {"zone": "eu-west-1a", "rack": "r" * 30}
    some = NodeMeta("n1", "1.0", reason="x" * 100, labels=labels,
                    workspaces=NodeMeta.digests(digests(20)))  # fmt: skip
    back = NodeMeta.unpack(some.pack())
    assert back is not None
    assert back.workspaces_complete
    assert len(back.workspaces) == 20
    assert back.labels == labels
    assert back.reason == "x" * 100

    many = NodeMeta("n1", "1.0", reason="x" * 100, labels=labels,
                    workspaces=NodeMeta.digests(digests(200)))  # fmt: skip
    packed = many.pack()
    assert len(packed) <= META_MAX
    back = NodeMeta.unpack(packed)
    assert back is not None
    assert not back.workspaces_complete
    assert back.labels == {}
    assert back.reason == ""
    assert 40 <= len(back.workspaces) < 200
    assert len(packed) > META_MAX - 8, "as many as fit"
    published = {ws: back.applied(ws) for ws in digests(200)}
    kept = {ws: d for ws, d in published.items() if d is not None}
    assert all(d == digests(200)[ws][:8] for ws, d in kept.items())


def test_metadata_of_an_older_peer_reads_without_workspaces() -> None:
    old = msgpack.packb([1, "n2", "0.9", "up", "ok", 0, "", "abc", "def", {}], use_bin_type=True)
    back = NodeMeta.unpack(old)
    assert back is not None
    assert back.workspaces == {}
    assert back.workspaces_complete
    assert back.acme is None
    assert workspace_tag("a") != workspace_tag("b")
