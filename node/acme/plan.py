"""Pure decisions: which certificates a workspace needs, when they are due, who orders.

Subjects
    A *subject* is the set of server names of an enabled ``tls: acme`` virtual host;
    its id is a hash of the sorted names, so two vhosts with the same names share one
    certificate and every node computes the same id. The *lineage* of a subject is its
    ACME certificates with exactly those names.

Renewal
    Due when a third of the lifetime remains, minus a jitter of up to 5% of the lifetime
    (at most 12 h) derived from the certificate's id - the same on every node, so renewals
    of many certificates spread out but every node agrees on when one is due. An ACME
    server's renewal information (ARI) replaces that time when it gives one.

Orderer
    Rendezvous hashing: every live node serving the workspace scores
    ``blake2b(subject || node key)``; the highest orders. After ``n`` failures the
    ``n``-th next one does (a node that cannot reach the CA does not block the others).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crdt.schema import Certificate, VirtualHost
from node.acme.records import SubjectStatus

__all__ = [
    "Subject",
    "backoff",
    "due",
    "jitter_fraction",
    "lineage",
    "lineages",
    "rank",
    "renew_at",
    "subject_id",
    "subjects",
]

RENEW_REMAINING = 1 / 3
"""Renew when this fraction of the lifetime remains."""
JITTER = 0.05
"""Renew up to this fraction of the lifetime earlier (per certificate)..."""
MAX_JITTER = 12 * 3600.0
"""...but at most this many seconds earlier."""


@dataclass(frozen=True)
class Subject:
    id: str
    names: tuple[str, ...]
    """Sorted, lower case."""
    vhosts: tuple[str, ...]


def subject_id(names: Iterable[str]) -> str:
    canonical = "\n".join(sorted({n.lower() for n in names}))
    return "s" + hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def subjects(vhosts: Iterable[VirtualHost]) -> dict[str, Subject]:
    """The subjects of the enabled ``tls: acme`` vhosts, by id."""
    found: dict[str, tuple[tuple[str, ...], list[str]]] = {}
    for vh in vhosts:
        if not vh.enabled or vh.tls.mode != "acme":
            continue
        names = tuple(sorted({n.lower() for n in vh.server_names}))
        sid = subject_id(names)
        found.setdefault(sid, (names, []))[1].append(vh.id)
    return {sid: Subject(sid, names, tuple(sorted(ids))) for sid, (names, ids) in found.items()}


def lineage(subject: Subject, certificates: Iterable[Certificate]) -> list[Certificate]:
    """The subject's installable ACME certificates, newest (latest expiry) first."""
    return lineages([subject], certificates).get(subject.id, [])


def lineages(
    subjects: Iterable[Subject], certificates: Iterable[Certificate]
) -> dict[str, list[Certificate]]:
    """:func:`lineage` of every subject in one pass over the certificates."""
    by_names: dict[frozenset[str], list[Certificate]] = {}
    for c in certificates:
        if c.source == "acme" and c.chain_pem and c.key_ref and c.not_after is not None:
            by_names.setdefault(frozenset(n.lower() for n in c.names), []).append(c)
    out: dict[str, list[Certificate]] = {}
    for subject in subjects:
        mine = by_names.get(frozenset(subject.names), [])
        out[subject.id] = sorted(mine, key=lambda c: (c.not_after, c.id), reverse=True)
    return out


def jitter_fraction(cert_id: str) -> float:
    """A number in [0, 1) fixed by the certificate id."""
    digest = hashlib.blake2b(cert_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def renew_at(cert: Certificate, ari: float | None = None) -> float:
    """When ``cert`` should be renewed (Unix time)."""
    if ari is not None and ari > 0:
        return ari
    assert cert.not_after is not None
    end = cert.not_after.timestamp()
    start = cert.not_before.timestamp() if cert.not_before is not None else end - 90 * 86400
    lifetime = max(end - start, 1.0)
    jitter = min(lifetime * JITTER, MAX_JITTER) * jitter_fraction(cert.id)
    return end - lifetime * RENEW_REMAINING - jitter


def rank(subject: str, keys: Iterable[bytes]) -> list[bytes]:
    """Node keys by rendezvous score for ``subject``, best first."""

    def score(key: bytes) -> tuple[bytes, bytes]:
        return hashlib.blake2b(subject.encode() + b"\0" + key, digest_size=16).digest(), key

    return sorted(set(keys), key=score, reverse=True)


def choose(
    subject: str, candidates: Iterable[bytes], failures: int = 0, avoid: bytes | None = None
) -> bytes | None:
    """The node that should order: rank ``failures`` (wrapping), skipping ``avoid`` (the
    holder of an expired lease) when another candidate exists."""
    ranked = rank(subject, candidates)
    if avoid is not None and len(ranked) > 1 and avoid in ranked:
        ranked.remove(avoid)
    if not ranked:
        return None
    return ranked[failures % len(ranked)]


def backoff(
    failures: int,
    base: float,
    cap: float = 6 * 3600.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry ``failures`` (1, 2, ...): ``base * 2**(failures-1)``, capped,
    with +-20% jitter."""
    delay = min(base * 2.0 ** max(failures - 1, 0), cap)
    return float(delay * (rng or random).uniform(0.8, 1.2))


def recent(marks: Mapping[str, float], now: float, window: float = 3600.0) -> list[float]:
    """Order times within the last ``window`` seconds, oldest first."""
    return sorted(t for t in marks.values() if now - window < t <= now + 60)


def issued(cert: Certificate, status: SubjectStatus | None) -> float:
    """When ``cert`` was issued, as far as the documents say."""
    when = cert.not_before.timestamp() if cert.not_before is not None else 0.0
    if status is not None and status.certificate == cert.id:
        when = max(when, status.last_success)
    return when


def due(
    line: list[Certificate],
    status: SubjectStatus | None,
    requested: float | None,
    now: float,
) -> tuple[bool, float]:
    """(whether the subject needs a new certificate now, when it does). ``line``: its
    lineage; ``requested``: when an operator asked for a renewal."""
    if not line:
        return True, now
    newest = line[0]
    if requested and requested > issued(newest, status):
        return True, now
    ari = None
    if status is not None and status.ari_certificate == newest.id:
        ari = status.ari_renew_at or None
    at = renew_at(newest, ari)
    return now >= at, at


def forced(requested: float | None, status: SubjectStatus | None) -> bool:
    """An operator asked for a renewal after the last attempt: skip the backoff once."""
    return bool(requested) and (status is None or (requested or 0.0) > status.last_attempt)
