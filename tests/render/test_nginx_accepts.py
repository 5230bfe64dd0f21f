"""Rendered trees pass the real ``nginx -t`` - with no warning - for every feature and for
any valid model hypothesis can draw."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt.schema import AccessList, Certificate, MeshSettings, StreamProxy, WorkspaceState
from render import Listen, NodeView, Rendered, render
from tests.crdt.strategies import sample_state, workspace_states
from tests.render.nginxconf import parse_tree
from tests.render.scenario import (
    SETTINGS,
    access_list,
    certificate,
    make_view,
    proxy,
    stream,
    upstream,
    vhost,
    workspace,
)
from tests.support.nginx import make_prefix, nginx_test, write_tree

pytestmark = pytest.mark.nginx


def assert_nginx_accepts(prefix: Path, rendered: Rendered) -> None:
    make_prefix(prefix)
    write_tree(prefix, rendered.files)
    out = nginx_test(prefix)
    assert out.returncode == 0, out.stderr
    complaints = [line for line in out.stderr.splitlines() if "[" in line and "]" in line]
    assert not complaints, out.stderr  # not even a [warn]
    parse_tree(rendered.files)  # our reader agrees it is well formed
    unsafe = {k: v.reason for k, v in rendered.units.items() if "safely" in v.reason}
    assert not unsafe


def test_every_feature_at_once(tmp_path: Path) -> None:
    hsts = {"max_age": "180d", "include_subdomains": True, "preload": True}
    features = workspace(
        upstream("rr", "10.0.0.1:80", "[2001:db8::1]:80"),
        upstream("lc", "10.0.0.1:80", method="least_conn", keepalive=8, keepalive_timeout="1m"),
        upstream("ih", "10.0.0.1:80", "10.0.0.2:80", method="ip_hash"),
        upstream("h", "10.0.0.1:80", method="hash", hash_key="$remote_addr", consistent=True),
        upstream("r", "10.0.0.1:80", method="random"),
        upstream("r2", "10.0.0.1:80", method="random_two_least_conn"),
        upstream("ghost", "ghost.internal:80"),
        # nginx refuses an upstream of backups only: they are promoted
        upstream(
            "orphans",
            servers=[{"address": "gone.internal:80"}, {"address": "10.0.0.7:80", "backup": True}],
        ),
        upstream(
            "tuned",
            servers=[
                {"address": "app.internal:8080", "weight": 4, "max_fails": 0, "fail_timeout": "1s"},
                {"address": "10.0.0.9:8080", "backup": True},
                {"address": "10.0.0.8:8080", "down": True},
            ],
            next_upstream={"on": ["error", "timeout", "http_503", "non_idempotent"], "tries": 2},
        ),
        certificate("c-default", ["default", "include"]),
        certificate("c-wild", ["*.wild.test"]),
        certificate("c-acme", ["acme.test"], source="acme"),
        access_list("acl", [("allow", "10.0.0.0/8"), ("allow", "2001:db8::/32"), ("deny", "all")]),
        vhost(
            "kitchen",
            ["kitchen.test", "*.kitchen.test", "kitchen.*"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "c-wild", "redirect_http": True, "hsts": hsts},
            websocket=True,
            client_max_body_size="25m",
            proxy_connect_timeout="2s",
            proxy_read_timeout="1h",
            proxy_send_timeout="250ms",
            request_headers={"X-Env": "prod"},
            response_headers={"X-Frame-Options": "SAMEORIGIN"},
            access_list="acl",
            locations=[
                proxy("/", "rr"),
                proxy("/lc/", "lc", request_headers={"X-Lc": "1"}),
                proxy("/ih/", "ih"),
                proxy("/h/", "h"),
                proxy("/r/", "r"),
                proxy("/r2/", "r2"),
                proxy("/ghost/", "ghost", response_headers={"Cache-Control": "no-store"}),
                proxy("/orphans/", "orphans"),
                proxy("/tuned", "tuned", match="exact"),
                {"path": "/moved", "action": "return", "status": 308, "url": "https://e.test/x"},
                {"path": "/teapot", "action": "return", "status": 418, "text": "short and stout"},
                {"path": "/assets/", "action": "static", "root": "/srv/assets"},
            ],
        ),
        vhost(
            "keywords",
            ["default", "include"],  # map keywords as host names
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "c-default", "hsts": hsts},
        ),
        vhost("acme", ["acme.test"], entry_points=["http", "https"], tls={"mode": "acme"}),
        stream("tcp", 7000, "h", connect_timeout="3s", proxy_timeout="10m", access_list="acl"),
        stream("udp", 7000, "r", protocol="udp", address="127.0.0.5"),
        stream("dead", 7001, "ghost"),
    )
    view = make_view(
        tmp_path,
        entry_points={
            "http": (Listen("127.0.0.2", 8080), Listen("::1", 8080)),
            "https": (Listen("*", 8443),),
        },
        resolved={"app.internal": ("10.1.0.1", "10.1.0.2")},
        installed_certificates=frozenset({"c-default", "c-wild", "c-acme"}),
        worker_processes=2,
    )
    rendered = render(SETTINGS, {"features": features, "sample": sample_state()}, view)
    assert_nginx_accepts(tmp_path, rendered)
    states = {k: v.state for k, v in rendered.units.items()}
    assert states["features/vhost/kitchen"] == "degraded"  # the ghost upstream
    assert states["features/vhost/keywords"] == "ok"
    assert states["features/stream/dead"] == "degraded"


# --- any valid model --------------------------------------------------------------------

STREAM_SAFE_KEYS = ("$remote_addr",)


@st.composite
def fleets(
    draw: st.DrawFn,
) -> tuple[dict[str, WorkspaceState], dict[str, tuple[str, ...]], frozenset[str]]:
    """1-3 workspaces (up to 9 vhosts) with certificates, streams and access lists added
    to what tests/crdt/strategies.py draws, plus what the node resolved and installed."""
    fleet: dict[str, WorkspaceState] = {}
    resolved: dict[str, tuple[str, ...]] = {}
    installed: set[str] = set()
    for w in range(draw(st.integers(1, 3))):
        state = draw(workspace_states())
        extra: list[Any] = []
        for vh in state.virtual_hosts.values():
            if vh.tls.mode == "acme" and draw(st.booleans()):
                cert = Certificate.model_validate(
                    {
                        "id": f"cert-{vh.id}",
                        "name": "c",
                        "names": list(vh.server_names),
                        "source": "acme",
                    }
                )
                extra.append(cert)
                if draw(st.booleans()):
                    installed.add(cert.id)
        if draw(st.booleans()):
            extra.append(
                AccessList.model_validate(
                    {
                        "id": "acl",
                        "name": "a",
                        "rules": [{"action": "allow", "source": "10.0.0.0/8"}],
                    }
                )
            )
        stream_ups = [
            u.id
            for u in state.upstreams.values()
            if u.method != "ip_hash" and (u.hash_key is None or u.hash_key in STREAM_SAFE_KEYS)
        ]
        ports = draw(st.lists(st.integers(20000, 20100), max_size=2, unique=True))
        for i, port in enumerate(ports if stream_ups else []):
            extra.append(
                StreamProxy.model_validate(
                    {
                        "id": f"s{i}",
                        "name": "s",
                        "port": port,
                        "protocol": draw(st.sampled_from(["tcp", "udp"])),
                        "upstream": draw(st.sampled_from(stream_ups)),
                    }
                )
            )
        ws = WorkspaceState.of([*state.upstreams.values(), *state.virtual_hosts.values(), *extra])
        if "acl" in ws.access_lists and ws.virtual_hosts:
            first = min(ws.virtual_hosts)
            ws.virtual_hosts[first] = ws.virtual_hosts[first].model_copy(
                update={"access_list": "acl"}
            )
        for up in ws.upstreams.values():
            for server in up.servers:
                host = server.address.rpartition(":")[0]
                if not host.startswith("[") and not host[0].isdigit() and draw(st.booleans()):
                    resolved[host] = (f"127.0.{w}.{len(resolved) % 250 + 1}",)
        fleet[f"ws{w}"] = ws
    return fleet, resolved, frozenset(installed)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fleets())
def test_any_valid_model_renders_to_a_config_nginx_accepts(
    drawn: tuple[dict[str, WorkspaceState], dict[str, tuple[str, ...]], frozenset[str]],
) -> None:
    fleet, resolved, installed = drawn
    with tempfile.TemporaryDirectory(prefix="nxmesh-render-") as tmp:
        prefix = Path(tmp)
        view: NodeView = make_view(prefix, resolved=resolved, installed_certificates=installed)
        rendered = render(MeshSettings(), fleet, view)
        assert_nginx_accepts(prefix, rendered)
    for key, status in rendered.units.items():
        if status.state == "skipped":  # valid models skip only for a name another unit took
            assert "served by other units" in status.reason or "already used" in status.reason, key
