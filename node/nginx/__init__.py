"""nginx on this node: render -> stage -> ``nginx -t`` -> swap -> reload -> verify.

- :class:`Applier` runs the pipeline (debounced, with quarantine of bad units by
  bisection, rollback, and drift repair); a trio service.
- :class:`Supervisor` runs a managed nginx as a child, restarted with backoff.
- :class:`ExternalNginx` finds an nginx run by someone else through its pid file.

See docs/applier.md.
"""

from node.nginx.applier import Applier, Build
from node.nginx.config import Mode, NginxSettings
from node.nginx.metrics import Metrics
from node.nginx.server import ExternalNginx, NginxServer, ServerDown
from node.nginx.status import (
    ApplierStatus,
    ApplyResult,
    DriftReport,
    Quarantined,
    SupervisorStatus,
)
from node.nginx.supervisor import Supervisor

__all__ = [
    "Applier",
    "ApplierStatus",
    "ApplyResult",
    "Build",
    "DriftReport",
    "ExternalNginx",
    "Metrics",
    "Mode",
    "NginxServer",
    "NginxSettings",
    "Quarantined",
    "ServerDown",
    "Supervisor",
    "SupervisorStatus",
]
