"""Certificates and ACME subjects as the API and the CLI show them (plain JSON)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Doc, Map

from crdt.schema import Certificate, VirtualHost
from node.acme import plan, records
from node.acme.records import Lease, SubjectStatus, read_map

__all__ = ["certificate_row", "floats", "subject_rows"]


def floats(doc: Doc[Any], name: str) -> dict[str, float]:
    """A top-level Map of numbers (``acme_renew``), ignoring anything else."""
    root = doc.get(name, type=Map)
    return {
        str(k): float(v)
        for k, v in list(root.items())
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def subject_rows(
    ws: str,
    doc: Doc[Any],
    vhosts: Mapping[str, VirtualHost],
    certs: Mapping[str, Certificate],
    now: float,
    lease_live: Callable[[Lease], bool],
) -> list[dict[str, Any]]:
    """One row per ACME subject of the workspace: its state, last error, backoff,
    orderer and newest certificate."""
    leases = read_map(doc, records.LEASES, Lease.loads)
    statuses = read_map(doc, records.STATUS, SubjectStatus.loads)
    renew = floats(doc, records.RENEW)
    out: list[dict[str, Any]] = []
    subjects = plan.subjects(vhosts.values())
    lines = plan.lineages(subjects.values(), certs.values())
    for sid, subject in sorted(subjects.items()):
        line = lines[sid]
        st = statuses.get(sid)
        due, when = plan.due(line, st, renew.get(sid), now)
        lease = leases.get(sid)
        newest = line[0] if line else None
        state = st.state if st else "pending"
        if not due and (st is None or st.state != "ordering"):
            state = "valid"
        not_after = newest.not_after if newest else None
        orderer = lease.node if lease is not None and lease_live(lease) else None
        retry_at = st.retry_at if st and st.retry_at > now else None
        out.append(
            {
                "workspace": ws,
                "subject": sid,
                "names": list(subject.names),
                "vhosts": list(subject.vhosts),
                "state": state,
                "error": st.error if st else "",
                "failures": st.failures if st else 0,
                "retry_at": retry_at,
                "retry_in": round(retry_at - now, 1) if retry_at else None,
                "last_attempt": st.last_attempt if st and st.last_attempt else None,
                "orderer": orderer,
                "certificate": newest.id if newest else None,
                "not_after": not_after.isoformat() if not_after else None,
                "expires_in": round(not_after.timestamp() - now) if not_after else None,
                "renew_at": round(when, 3) if newest else None,
                "renewal_requested": renew.get(sid),
            }
        )
    return out


def certificate_row(
    cert: Certificate,
    subjects: list[dict[str, Any]],
    now: float,
    *,
    installed: bool | None,
    install_error: str | None,
) -> dict[str, Any]:
    """A certificate's status: expiry, renewal, the ACME state of its subject, and
    whether this node installed it."""
    not_after = cert.not_after.timestamp() if cert.not_after else None
    row: dict[str, Any] = {
        "id": cert.id,
        "name": cert.name,
        "names": list(cert.names),
        "source": cert.source,
        "not_after": cert.not_after.isoformat() if cert.not_after else None,
        "expires_in": round(not_after - now) if not_after is not None else None,
        "expired": not_after is not None and not_after <= now,
        "installed": installed,
        "install_error": install_error,
        "acme": None,
    }
    if cert.source == "acme":
        wanted = {n.lower() for n in cert.names}
        match = next((s for s in subjects if set(s["names"]) == wanted), None)
        if match is not None:
            row["acme"] = {
                k: match[k]
                for k in ("subject", "state", "error", "failures", "retry_at", "orderer")
            }
            row["acme"]["current"] = match["certificate"] == cert.id
            if match["certificate"] == cert.id:
                row["renew_at"] = match["renew_at"]
        else:
            row["acme"] = {"subject": None, "state": "unused"}
    return row
