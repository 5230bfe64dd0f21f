"""Certificate metrics: seconds to expiry per certificate, ACME orders and their failures,
installs. The collector reads a plain snapshot the trio thread refreshes at every pass
(prometheus-client's thread never touches a document)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["AcmeMetrics", "CertificateSnapshot"]


@dataclass
class CertificateSnapshot:
    """What the collector shows (replaced whole by the trio thread)."""

    expiry: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    """(workspace, certificate id, name, source) -> not_after (Unix time)."""
    subjects: dict[str, int] = field(default_factory=dict)
    """ACME subject state (as the documents say) -> how many."""
    installed: int = 0
    install_errors: int = 0


class _Collector(Collector):
    def __init__(self, metrics: AcmeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        snap = self.metrics.snapshot
        now = time.time()
        expiry = GaugeMetricFamily(
            "nxmesh_certificate_expiry_seconds",
            "Seconds until the certificate expires (negative: expired)",
            labels=["workspace", "certificate", "name", "source"],
        )
        for (ws, cert_id, name, source), not_after in sorted(snap.expiry.items()):
            expiry.add_metric([ws, cert_id, name, source], round(not_after - now, 1))
        yield expiry
        subjects = GaugeMetricFamily(
            "nxmesh_acme_subjects", "ACME certificates wanted, by state", labels=["state"]
        )
        for state, n in sorted(snap.subjects.items()):
            subjects.add_metric([state], n)
        yield subjects
        installed = GaugeMetricFamily(
            "nxmesh_certificates_installed", "Certificates installed for this node's nginx"
        )
        installed.add_metric([], snap.installed)
        yield installed
        errors = GaugeMetricFamily(
            "nxmesh_certificate_install_errors", "Certificates this node cannot install"
        )
        errors.add_metric([], snap.install_errors)
        yield errors


class AcmeMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.snapshot = CertificateSnapshot()
        self.orders = Counter(
            "nxmesh_acme_orders",
            "ACME orders this node completed, by outcome (issued, failed, rate_limited, lost)",
            ["outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "nxmesh_acme_order_failures",
            "ACME orders by this node that failed",
            ["workspace"],
            registry=registry,
        )
        self.duration = Histogram(
            "nxmesh_acme_order_seconds",
            "Seconds from taking the lease to a stored certificate",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=registry,
        )
        if registry is not None:
            registry.register(_Collector(self))
