"""Prometheus metrics of the applier and the supervisor, on an injectable registry."""

from __future__ import annotations

import math
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """One set of metrics; pass the daemon's registry (default: a private one, so that
    several appliers - tests - never collide on the global registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reloads = Counter(
            "nxmesh_nginx_reloads",
            "HUPs sent to nginx, by outcome: ok (new workers verified), failed, rollback.",
            ["outcome"],
            registry=r,
        )
        self.failures = Counter(
            "nxmesh_nginx_apply_failures",
            "Applies that failed, by stage (render, stage, test, reload, start, internal).",
            ["stage"],
            registry=r,
        )
        self.quarantined = Gauge(
            "nxmesh_nginx_quarantined_units",
            "Units left out of the applied tree because nginx rejected them.",
            registry=r,
        )
        self.apply_duration = Histogram(
            "nxmesh_nginx_apply_duration_seconds",
            "One pass of the pipeline that changed something: render to verified reload.",
            buckets=_SECONDS,
            registry=r,
        )
        self.test_duration = Histogram(
            "nxmesh_nginx_test_duration_seconds",
            "One nginx -t run.",
            buckets=_SECONDS,
            registry=r,
        )
        self.reload_duration = Histogram(
            "nxmesh_nginx_reload_duration_seconds",
            "HUP to new workers verified.",
            buckets=_SECONDS,
            registry=r,
        )
        self.drift_repairs = Counter(
            "nxmesh_nginx_drift_repairs",
            "Times files changed by hand under the applied tree were restored.",
            registry=r,
        )
        self.restarts = Counter(
            "nxmesh_nginx_restarts",
            "Times a managed nginx went down unexpectedly and was restarted.",
            registry=r,
        )
        self.up = Gauge("nxmesh_nginx_up", "1 when nginx runs with workers.", registry=r)
        self.applied_at: float | None = None
        self.revision_age = Gauge(
            "nxmesh_nginx_revision_age_seconds",
            "Seconds since the serving revision was applied (NaN before the first).",
            registry=r,
        )
        self.revision_age.set_function(self._age)

    def _age(self) -> float:
        return math.nan if self.applied_at is None else time.time() - self.applied_at

    def value(self, name: str, **labels: str) -> float:
        """A sample's value (0 when absent) - for tests and status pages."""
        return self.registry.get_sample_value(name, labels or None) or 0.0
