"""Which member events make the ACME service plan again (pure logic, no mesh)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from node.acme.service import AcmeService
from node.meta import NodeMeta


def service() -> AcmeService:
    host: Any = SimpleNamespace(identity=SimpleNamespace(public_key=b"m" * 32))
    return AcmeService(host, cast(Any, None), cast(Any, None))


def woke(s: AcmeService) -> bool:
    """Whether a pass is due now; resets the flag for the next step."""
    due = s._wake.is_set()
    s._wake = type(s._wake)()
    return due


def test_only_changes_of_who_may_order_wake_a_pass() -> None:
    s = service()
    capable = NodeMeta(name="n2", version="1", acme=())
    key = b"k" * 32
    s.members_changed(key, True, capable)
    assert woke(s), "a member that may order came"
    waiters = s._members
    s.members_changed(key, True, NodeMeta(name="n2", version="1", state="abc", acme=()))
    assert not woke(s), "a new applied revision changes nothing for ACME"
    assert waiters.is_set(), "orders waiting for tokens to spread hear of every update"
    s.members_changed(key, True, NodeMeta(name="n2", version="1"))
    assert woke(s), "it stopped taking part (an older version)"
    s.members_changed(key, True, None)
    assert not woke(s), "unreadable metadata: still not taking part"
    s.members_changed(key, False, NodeMeta(name="n2", version="1", acme=()))
    assert woke(s), "it went away"
    s.members_changed(key, False, None)
    assert not woke(s)
