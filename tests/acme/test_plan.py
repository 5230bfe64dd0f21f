"""The pure rules: subjects, renewal times (jitter, ARI, forced), the rendezvous choice of
the orderer, backoff; the document records and how concurrent leases resolve."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc

from crdt.schema import TLS, Certificate, Location, VirtualHost
from node.acme import plan, records
from node.acme.records import Lease, SubjectStatus, read_map

KEYS = [bytes([i]) * 32 for i in range(1, 6)]
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def vhost(ident: str, names: list[str], mode: str = "acme", enabled: bool = True) -> VirtualHost:
    return VirtualHost(
        id=ident,
        name=ident,
        server_names=tuple(names),
        entry_points=("http", "https"),
        enabled=enabled,
        tls=TLS(mode=mode),  # type: ignore[arg-type]
        locations=(Location(path="/", action="return", status=200),),
    )


def cert(ident: str, names: list[str], days: float = 90, start: datetime = T0) -> Certificate:
    return Certificate(
        id=ident,
        name=ident,
        names=tuple(names),
        source="acme",
        not_before=start,
        not_after=start + timedelta(days=days),
        key_ref=f"k-{ident}",
        chain_pem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )


def test_subjects_group_acme_vhosts_by_their_names() -> None:
    found = plan.subjects(
        [
            vhost("a", ["B.example.com", "a.example.com"]),
            vhost("b", ["a.example.com", "b.example.com"]),  # same names, other order
            vhost("c", ["c.example.com"], enabled=False),
            vhost("d", ["d.example.com"], mode="off"),
        ]
    )
    assert len(found) == 1
    (subject,) = found.values()
    assert subject.names == ("a.example.com", "b.example.com")
    assert subject.vhosts == ("a", "b")
    assert subject.id == plan.subject_id(["b.example.com", "A.example.com"])


def test_lineage_is_exact_names_newest_first() -> None:
    subject = plan.Subject(plan.subject_id(["a.test"]), ("a.test",), ("v",))
    older, newer = cert("old", ["a.test"], 30), cert("new", ["a.test"], 60)
    other = cert("other", ["a.test", "b.test"])
    assert [c.id for c in plan.lineage(subject, [older, other, newer])] == ["new", "old"]


def test_renewal_is_due_with_a_third_left_minus_a_bounded_jitter() -> None:
    for i in range(200):
        c = cert(f"c{i}", ["a.test"], days=90)
        at = plan.renew_at(c)
        two_thirds = (T0 + timedelta(days=60)).timestamp()
        assert two_thirds - 12 * 3600 <= at <= two_thirds  # 5% of 90 d > 12 h: capped
    short = cert("s", ["a.test"], days=24 / 86400)
    lifetime = 24.0
    at = plan.renew_at(short)
    assert T0.timestamp() + lifetime * 2 / 3 - lifetime * 0.05 <= at <= T0.timestamp() + 16
    # Every node computes the same time for the same certificate.
    assert plan.renew_at(short) == at


def test_due_follows_the_lineage_ari_and_operator_requests() -> None:
    c = cert("c", ["a.test"], days=90)
    line = [c]
    start = T0.timestamp()
    assert plan.due([], None, None, start) == (True, start)
    due, when = plan.due(line, None, None, start + 86400)
    assert not due
    assert plan.due(line, None, None, when)[0]
    ari = SubjectStatus(state="valid", ari_certificate="c", ari_renew_at=start + 10 * 86400)
    assert plan.due(line, ari, None, start + 11 * 86400) == (True, start + 10 * 86400)
    stale = SubjectStatus(state="valid", ari_certificate="other", ari_renew_at=start + 1)
    assert not plan.due(line, stale, None, start + 2)[0]
    # A renewal requested after the certificate was issued makes it due now.
    ok = SubjectStatus(state="valid", certificate="c", last_success=start + 5)
    assert plan.due(line, ok, start + 6, start + 7)[0]
    assert not plan.due(line, ok, start + 4, start + 7)[0]
    # ...and skips a backoff once: not after the attempt it caused.
    failed = SubjectStatus(state="failed", last_attempt=start + 8, retry_at=start + 100)
    assert plan.forced(start + 6, None)
    assert not plan.forced(start + 6, failed)
    assert plan.forced(start + 9, failed)


@given(st.text(min_size=1, max_size=30), st.permutations(KEYS))
def test_every_node_ranks_the_same_whatever_order_it_sees_members_in(
    subject: str, keys: list[bytes]
) -> None:
    assert plan.rank(subject, keys) == plan.rank(subject, KEYS)


def test_choice_rotates_with_failures_and_avoids_an_expired_holder() -> None:
    ranked = plan.rank("s1", KEYS)
    assert plan.choose("s1", KEYS) == ranked[0]
    assert plan.choose("s1", KEYS, failures=1) == ranked[1]
    assert plan.choose("s1", KEYS, failures=len(KEYS)) == ranked[0]
    assert plan.choose("s1", KEYS, avoid=ranked[0]) == ranked[1]
    assert plan.choose("s1", [ranked[0]], avoid=ranked[0]) == ranked[0]  # nobody else
    assert plan.choose("s1", []) is None
    # Removing a node that is not first changes nothing (rendezvous: minimal disruption).
    assert plan.choose("s1", [k for k in KEYS if k != ranked[3]]) == ranked[0]
    # Subjects spread over the nodes.
    firsts = {plan.rank(f"subject{i}", KEYS)[0] for i in range(100)}
    assert firsts == set(KEYS)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [plan.backoff(n, 60.0, 3600.0, rng) for n in range(1, 10)]
    for n, d in enumerate(delays, 1):
        nominal = min(60.0 * 2 ** (n - 1), 3600.0)
        assert 0.8 * nominal <= d <= 1.2 * nominal
    assert plan.recent({"a": 100.0, "b": 3000.0, "c": 4000.0}, 4000.0) == [3000.0, 4000.0]


def test_records_round_trip_and_ignore_what_does_not_parse() -> None:
    lease = Lease("ab" * 32, "n1", "id1", 10.0, 5.0, order_url="https://x/o/1", names=("a.test",))
    assert Lease.loads(lease.dumps()) == lease
    for bad in (None, 3, "not json", "[]", '{"holder": 3}', '{"node": "n"}'):
        assert Lease.loads(bad) is None
    assert records.valid_token("A" * 43, "A" * 43 + "." + "b" * 43)
    for token in ("../etc/passwd", "a" * 8, "ok" * 10 + "/", ".hidden" * 3):
        assert not records.valid_token(token)
    assert not records.valid_token("A" * 43, "B" * 43 + "." + "b" * 43)


def test_two_nodes_taking_one_lease_at_once_agree_on_one_holder() -> None:
    """What the settle delay relies on: concurrent writes of one key resolve to the same
    record on every replica, so exactly one taker still finds its own lease."""
    for seed in range(20):
        a: Doc[Any] = Doc(client_id=1000 + seed)
        b: Doc[Any] = Doc(client_id=2000 - seed)
        mine = Lease("aa" * 32, "a", "lease-a", 100.0, 1.0)
        theirs = Lease("bb" * 32, "b", "lease-b", 100.0, 1.0)
        with a.transaction():
            records.write(a, records.LEASES, "s", mine)
        with b.transaction():
            records.write(b, records.LEASES, "s", theirs)
        a.apply_update(b.get_update(a.get_state()))
        b.apply_update(a.get_update(b.get_state()))
        seen_a = read_map(a, records.LEASES, Lease.loads)["s"]
        seen_b = read_map(b, records.LEASES, Lease.loads)["s"]
        assert seen_a == seen_b
        keeps = [x for x in (mine, theirs) if x.lease_id == seen_a.lease_id]
        assert len(keeps) == 1
        winner = mine if a.client_id > b.client_id else theirs
        assert seen_a == winner  # pycrdt: the higher client id wins (docs/state.md)
