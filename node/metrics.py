"""Prometheus metrics of a node: mesh counters, the state plane, build info (the
applier registers its own on the same registry), served on a loopback port.

The collectors read plain counters the trio thread maintains; the HTTP server runs in
prometheus-client's own thread and never touches a pycrdt document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from mesh import MeshNode

__all__ = ["MeshCollector", "MetricsServer", "StateCollector", "StateCounters"]


class MeshCollector(Collector):
    """Membership and dissemination counters of the running mesh node."""

    def __init__(self, node: Callable[[], MeshNode | None], version: str) -> None:
        self._node = node
        self._version = version

    def collect(self) -> Iterator[Any]:
        info = InfoMetricFamily("nxmesh_build", "NxMesh build information")
        info.add_metric([], {"version": self._version})
        yield info
        node = self._node()
        if node is None or not node.running:
            return
        stats = node.stats
        members = GaugeMetricFamily(
            "nxmesh_mesh_members", "Members known, by state", labels=["state"]
        )
        counts: dict[str, int] = {}
        for m in node.members():
            state = m.state.name.lower()
            counts[state] = counts.get(state, 0) + 1
        for state, n in sorted(counts.items()):
            members.add_metric([state], n)
        yield members
        for name, value, doc in (
            ("packets_in", stats.packets_in, "Datagrams received"),
            ("packets_out", stats.packets_out, "Datagrams sent"),
            ("bytes_in", stats.bytes_in, "Datagram bytes received"),
            ("bytes_out", stats.bytes_out, "Datagram bytes sent"),
            ("probes", stats.probes, "Probes sent"),
            ("probe_failures", stats.probe_failures, "Probes without an ack"),
            ("broadcasts_sent", stats.broadcasts_sent, "Broadcasts originated"),
            ("broadcasts_delivered", stats.broadcasts_delivered, "Broadcasts delivered"),
            ("push_pulls_in", stats.push_pulls_in, "Anti-entropy exchanges answered"),
            ("streams_opened", stats.streams_opened, "TCP exchanges opened"),
        ):
            counter = CounterMetricFamily(f"nxmesh_mesh_{name}", doc)
            counter.add_metric([], value)
            yield counter
        drops = CounterMetricFamily(
            "nxmesh_mesh_drops", "Input dropped, by reason", labels=["reason"]
        )
        for reason, n in sorted(stats.drops.items()):
            drops.add_metric([reason], n)
        yield drops


@dataclass
class StateCounters:
    """State-plane counters kept by the daemon (the trio thread writes them)."""

    local_edits: int = 0
    remote_updates: int = 0
    documents: dict[str, int] = field(default_factory=dict)
    """Document name -> bytes of its log on disk (refreshed on compaction checks)."""
    replication_drops: dict[str, int] = field(default_factory=dict)


class StateCollector(Collector):
    def __init__(self, counters: StateCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Any]:
        c = self.counters
        edits = CounterMetricFamily("nxmesh_state_local_edits", "Edits acknowledged here")
        edits.add_metric([], c.local_edits)
        yield edits
        remote = CounterMetricFamily(
            "nxmesh_state_remote_updates", "Peers' updates applied (broadcast or anti-entropy)"
        )
        remote.add_metric([], c.remote_updates)
        yield remote
        docs = GaugeMetricFamily(
            "nxmesh_state_log_bytes", "Bytes of each document's update log", labels=["document"]
        )
        for name, size in sorted(dict(c.documents).items()):
            docs.add_metric([name], size)
        yield docs
        drops = CounterMetricFamily(
            "nxmesh_state_drops", "Replication payloads dropped, by reason", labels=["reason"]
        )
        for reason, n in sorted(dict(c.replication_drops).items()):
            drops.add_metric([reason], n)
        yield drops


class MetricsServer:
    """prometheus-client's HTTP server on a loopback address (its own thread)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: Thread | None = None

    def start(self) -> tuple[str, int]:
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
