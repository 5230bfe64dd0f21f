"""Values the console shares with the daemon, duplicated here on purpose: ``tui`` speaks
HTTP to the API and imports nothing of ``node`` (an import-linter contract says so)."""

from __future__ import annotations

from pathlib import Path

SOCKET_NAME = "api.sock"
"""The API socket inside a node's state directory (``node.statedir``)."""

DEFAULT_STATE_DIR = Path("/var/lib/nxmesh")
"""Where ``nxmesh`` looks when no ``--state-dir`` is given (``node.cli.common``)."""

STATE_DIR_ENV = "NXMESH_STATE_DIR"

BASE_URL = "http://nxmesh"
"""The host part of every request; the API ignores it."""

MEMBER_STATES = ("alive", "suspect", "dead", "left", "revoked")
"""What ``GET /v1/nodes`` reports as a member's ``state`` (``unknown`` when not seen yet)."""

DEFAULT_WORKSPACE = "default"
"""The workspace ``nxmesh init`` creates; chosen when there are several."""

UPSTREAM_METHODS = (
    "round_robin",
    "least_conn",
    "ip_hash",
    "hash",
    "random",
    "random_two_least_conn",
)
"""Balancing methods an upstream may use (``crdt.schema.upstream``)."""

DEFAULT_ENTRY_POINT = "http"
