"""The fault lab: real NxMesh daemons with real nginx, each in its own Linux network
namespace on a bridge the lab builds and removes, under a seeded plan of partitions,
packet loss, crashes, stalls, a full disk and a revocation, with a client workload and a
checker. Needs root, iproute2 and iptables. See docs/faults.md.

Used by ``python -m bench.faults`` and tests/e2e/test_faults.py::

    report = run_lab(LabConfig(seed=7, nodes=6, minutes=1.5))
    assert report.passed, report.summary()
"""

from bench.faultlab.lab import LabConfig, Report, run_lab

__all__ = ["LabConfig", "Report", "run_lab"]
