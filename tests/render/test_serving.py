"""Rendered trees served by a real nginx: requests through it reach test upstreams.

Each test renders a small desired state, runs nginx in the foreground under its own
prefix on a 127.0.0.2 port pair, and speaks HTTP (or TLS, or raw TCP/UDP) to it. One
worker process, so round-robin order is nginx's and counts are exact.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from render import NodeView
from tests.render.http import Backend, Response, request, start_backend, start_udp_echo
from tests.render.pki import TestCA, self_signed
from tests.render.scenario import (
    Ports,
    access_list,
    certificate,
    make_view,
    proxy,
    served,
    stream,
    upstream,
    vhost,
    workspace,
)
from tests.support.nginx import free_port, make_prefix, write_tree

pytestmark = pytest.mark.nginx


@asynccontextmanager
async def backends(*names: str) -> AsyncIterator[list[Backend]]:
    async with trio.open_nursery() as nursery:
        yield [await start_backend(nursery, name) for name in names]
        nursery.cancel_scope.cancel()


def dead_address() -> str:
    """A loopback port nothing listens on: connections are refused."""
    return f"127.0.0.1:{free_port('127.0.0.1')}"


async def get(ports: Ports, host: str, path: str = "/", **kw: Any) -> Response:
    """A plain-HTTP request to the test node's http entry point."""
    return await request(ports.host, ports.http, path, hostname=host, **kw)


async def test_round_robin_spreads_requests_by_weight(tmp_path: Path) -> None:
    async with backends("b0", "b1", "b2") as (b0, b1, b2):
        ws = workspace(
            upstream(
                "app",
                servers=[
                    {"address": b0.address, "weight": 2},
                    {"address": b1.address},
                    {"address": b2.address},
                ],
            ),
            vhost("web", ["rr.test"], locations=[proxy("/", "app")]),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            seen = [(await get(ports, "rr.test")).json()["backend"] for _ in range(40)]
    assert Counter(seen) == {"b0": 20, "b1": 10, "b2": 10}


async def test_hash_and_ip_hash_pin_requests(tmp_path: Path) -> None:
    async with backends("b0", "b1", "b2", "b3") as all_backends:
        addresses = [b.address for b in all_backends]
        ws = workspace(
            upstream("by-uri", *addresses, method="hash", hash_key="$request_uri", consistent=True),
            upstream("by-ip", *addresses, method="ip_hash"),
            vhost(
                "web",
                ["hash.test"],
                locations=[proxy("/uri/", "by-uri"), proxy("/ip/", "by-ip")],
            ),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            first = {}
            for path in [f"/uri/{i}" for i in range(12)]:
                first[path] = (await get(ports, "hash.test", path)).json()["backend"]
            again = {p: (await get(ports, "hash.test", p)).json()["backend"] for p in first}
            by_ip = {
                (await get(ports, "hash.test", f"/ip/{i}")).json()["backend"] for i in range(8)
            }
    assert again == first  # the same URI always lands on the same server
    assert len(set(first.values())) > 1  # ... and different URIs spread
    assert len(by_ip) == 1  # every request comes from 127.0.0.1


async def test_backup_serves_only_when_the_primaries_cannot(tmp_path: Path) -> None:
    async with backends("primary", "backup", "spare") as (primary, backup, spare):
        ws = workspace(
            upstream(
                "healthy",
                servers=[{"address": primary.address}, {"address": backup.address, "backup": True}],
            ),
            upstream(
                "broken",
                servers=[{"address": dead_address()}, {"address": spare.address, "backup": True}],
            ),
            upstream(
                "drained",
                servers=[
                    {"address": primary.address, "down": True},
                    {"address": spare.address},
                ],
            ),
            vhost(
                "web",
                ["backup.test"],
                locations=[
                    proxy("/h/", "healthy"),
                    proxy("/b/", "broken"),
                    proxy("/d/", "drained"),
                ],
            ),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            healthy = [await get(ports, "backup.test", f"/h/{i}") for i in range(5)]
            broken = [await get(ports, "backup.test", f"/b/{i}") for i in range(5)]
            drained = [await get(ports, "backup.test", f"/d/{i}") for i in range(5)]
    assert {r.json()["backend"] for r in healthy} == {"primary"}
    assert [r.status for r in broken] == [200] * 5
    assert {r.json()["backend"] for r in broken} == {"spare"}
    assert {r.json()["backend"] for r in drained} == {"spare"}  # "down" takes no traffic


async def test_next_upstream_retries_or_not(tmp_path: Path) -> None:
    async with backends("live") as (live,):
        dead = dead_address()
        ws = workspace(
            upstream("retry", dead, live.address),
            upstream("no-retry", dead, live.address, next_upstream={"on": []}),
            vhost(
                "web", ["retry.test"], locations=[proxy("/r/", "retry"), proxy("/n/", "no-retry")]
            ),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            retried = [(await get(ports, "retry.test", f"/r/{i}")).status for i in range(4)]
            not_retried = [(await get(ports, "retry.test", f"/n/{i}")).status for i in range(4)]
    assert retried == [200] * 4
    assert 502 in not_retried  # the dead server's turn fails instead of passing on


async def test_keepalive_upstream_reuses_connections(tmp_path: Path) -> None:
    async with backends("kept", "closed") as (kept, closed):
        ws = workspace(
            upstream("kept", kept.address, keepalive=4, keepalive_timeout="30s"),
            upstream("closed", closed.address),
            vhost("web", ["ka.test"], locations=[proxy("/k/", "kept"), proxy("/c/", "closed")]),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            for i in range(5):
                await get(ports, "ka.test", f"/k/{i}")
                await get(ports, "ka.test", f"/c/{i}")
    assert kept.connections == 1
    assert {s.version for s in kept.seen} == {"HTTP/1.1"}
    assert all("connection" not in s.headers for s in kept.seen)
    assert closed.connections == 5


async def test_request_and_response_headers(tmp_path: Path) -> None:
    async with backends("app") as (app,):
        ws = workspace(
            upstream("app", app.address),
            vhost(
                "web",
                ["headers.test"],
                request_headers={"X-Team": "blue team", "X-Forwarded-Proto": "https"},
                response_headers={"X-Frame-Options": "DENY"},
                locations=[
                    proxy(
                        "/api/",
                        "app",
                        request_headers={"X-Loc": "api"},
                        response_headers={"Cache-Control": "no-store"},
                    ),
                    proxy("/", "app"),
                ],
            ),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            api = await get(ports, "headers.test", "/api/x")
            root = await get(ports, "headers.test", "/")
    sent = api.json()["headers"]
    assert sent["x-team"] == "blue team"
    assert sent["x-loc"] == "api"
    assert sent["x-forwarded-proto"] == "https"  # the vhost overrides the default
    assert sent["host"] == "headers.test"
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["x-frame-options"] == "DENY"  # the vhost's header, repeated
    assert api.headers["x-nxmesh-node"] == "test-node"
    assert root.headers["x-frame-options"] == "DENY"
    assert "cache-control" not in root.headers
    assert root.json()["headers"]["x-team"] == "blue team"


async def test_websocket_upgrade_passes_only_where_enabled(tmp_path: Path) -> None:
    async with backends("ws") as (backend,):
        ws = workspace(
            upstream("app", backend.address),
            vhost("live", ["live.test"], websocket=True, locations=[proxy("/", "app")]),
            vhost("plain", ["plain.test"], locations=[proxy("/", "app")]),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            stream_ = await trio.open_tcp_stream(ports.host, ports.http)
            async with stream_:
                await stream_.send_all(
                    b"GET /chat HTTP/1.1\r\nHost: live.test\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n"
                )
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream_.receive_some(4096)
                assert head.startswith(b"HTTP/1.1 101")
                await stream_.send_all(b"hello")
                with trio.fail_after(5):
                    echoed = await stream_.receive_some(4096)
            plain = await get(
                ports,
                "plain.test",
                "/chat",
                headers={"Upgrade": "websocket", "Connection": "Upgrade"},
            )
    assert echoed == b"echo:hello"
    assert plain.status == 200
    assert "upgrade" not in plain.json()["headers"]


async def test_returns_redirects_and_static_files(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "static").mkdir(parents=True)
    (www / "static" / "app.css").write_text("body{}")
    ws = workspace(
        vhost(
            "web",
            ["ret.test"],
            locations=[
                {"path": "/", "action": "return", "status": 200, "text": "root"},
                {
                    "path": "/old",
                    "match": "exact",
                    "action": "return",
                    "status": 301,
                    "url": "/new",
                },
                {
                    "path": "/away",
                    "action": "return",
                    "status": 302,
                    "url": "https://example.org/x?y=1",
                },
                {"path": "/gone", "action": "return", "status": 410},
                {"path": "/static/", "action": "static", "root": str(www)},
            ],
        )
    )
    ports = Ports.pick()
    async with served(tmp_path / "p", {"ws": ws}, make_view(tmp_path / "p", ports)):
        root = await get(ports, "ret.test", "/anything")
        old = await get(ports, "ret.test", "/old")
        old_child = await get(ports, "ret.test", "/old/child")
        away = await get(ports, "ret.test", "/away/z")
        gone = await get(ports, "ret.test", "/gone")
        css = await get(ports, "ret.test", "/static/app.css")
        missing = await get(ports, "ret.test", "/static/nope.css")
    assert (root.status, root.body) == (200, b"root")
    assert root.headers["content-type"].startswith("text/plain")
    assert old.status == 301
    assert old.headers["location"] == f"http://ret.test:{ports.http}/new"
    assert (old_child.status, old_child.body) == (200, b"root")  # exact match only
    assert (away.status, away.headers["location"]) == (302, "https://example.org/x?y=1")
    assert gone.status == 410
    assert (css.status, css.body) == (200, b"body{}")
    assert css.headers["content-type"] == "text/css"
    assert missing.status == 404


async def test_default_server_answers_unknown_hosts(tmp_path: Path) -> None:
    ws = workspace(vhost("web", ["known.test"]))
    ports = Ports.pick()
    async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
        known = await get(ports, "known.test")
        unknown = await get(ports, "unknown.test")
    assert (known.status, known.body) == (200, b"web")
    assert unknown.status == 404
    assert unknown.headers["x-nxmesh-status"] == "no virtual host for this name"
    assert unknown.headers["x-nxmesh-node"] == "test-node"
    assert unknown.body == b"no virtual host for this name\n"


async def test_access_lists_allow_and_deny_but_not_acme(tmp_path: Path) -> None:
    ws = workspace(
        access_list("loopback", [("allow", "127.0.0.0/8")]),
        access_list("nobody", [("deny", "127.0.0.1")], default="allow"),
        vhost("open", ["open.test"], access_list="loopback"),
        vhost("shut", ["shut.test"], access_list="nobody"),
    )
    ports = Ports.pick()
    prefix = make_prefix(tmp_path)
    (prefix / "acme" / "token123").write_text("token123.thumbprint")
    async with served(prefix, {"ws": ws}, make_view(prefix, ports)):
        allowed = await get(ports, "open.test")
        denied = await get(ports, "shut.test")
        challenge = await get(ports, "shut.test", "/.well-known/acme-challenge/token123")
    assert allowed.status == 200
    assert denied.status == 403
    assert (challenge.status, challenge.body) == (200, b"token123.thumbprint")


async def test_client_max_body_size(tmp_path: Path) -> None:
    async with backends("app") as (app,):
        ws = workspace(
            upstream("app", app.address),
            vhost("web", ["body.test"], client_max_body_size="1k", locations=[proxy("/", "app")]),
        )
        ports = Ports.pick()
        async with served(tmp_path, {"ws": ws}, make_view(tmp_path, ports)):
            small = await get(ports, "body.test", method="POST", body=b"x" * 500)
            large = await get(ports, "body.test", method="POST", body=b"x" * 5000)
    assert small.status == 200
    assert large.status == 413
    assert len(app.seen) == 1


async def test_unresolvable_upstream_answers_503_and_the_rest_serves(tmp_path: Path) -> None:
    async with backends("app") as (app,):
        ws = workspace(
            upstream("ghost", "ghost.internal:80"),
            upstream("named", f"app.internal:{app.port}"),
            upstream("off", servers=[{"address": app.address, "down": True}]),
            vhost(
                "web",
                ["degraded.test"],
                locations=[
                    proxy("/ghost/", "ghost"),
                    proxy("/named/", "named"),
                    proxy("/off/", "off"),
                    {"path": "/", "action": "return", "status": 200, "text": "alive"},
                ],
            ),
        )
        ports = Ports.pick()
        # the node resolved app.internal to the test upstream's address (render never resolves)
        view = make_view(tmp_path, ports, resolved={"app.internal": ("127.0.0.1",)})
        async with served(tmp_path, {"ws": ws}, view) as (_, rendered):
            ghost = await get(ports, "degraded.test", "/ghost/x")
            named = await get(ports, "degraded.test", "/named/x")
            off = await get(ports, "degraded.test", "/off/x")
            alive = await get(ports, "degraded.test", "/")
    assert ghost.status == 503
    assert ghost.headers["x-nxmesh-status"] == (
        "degraded: upstream ghost has no usable server: no server name resolves on this node"
    )
    assert off.status == 503
    assert off.headers["x-nxmesh-status"].endswith("every server is down")
    assert named.json()["backend"] == "app"
    assert (alive.status, alive.body) == (200, b"alive")
    status = rendered.units["ws/vhost/web"]
    assert status.state == "degraded"
    assert "unresolved server names: ghost.internal" in status.reason
    assert "upstream off" in status.reason


def tls_client(ca: TestCA | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    if ca is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=ca.pem.decode())
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


async def tls_handshake_alpn(ports: Ports, name: str, context: ssl.SSLContext) -> str | None:
    tcp = await trio.open_tcp_stream(ports.host, ports.https)
    tls = trio.SSLStream(tcp, context, server_hostname=name)
    async with tls:
        await tls.do_handshake()
        chosen: str | None = tls.selected_alpn_protocol()
        return chosen


def tls_view(prefix: Path, ports: Ports, installed: set[str]) -> NodeView:
    return make_view(prefix, ports, installed_certificates=frozenset(installed))


async def test_https_answers_with_the_certificate_for_the_sni_name(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path)
    ca = TestCA.create()
    ca.install(prefix / "certs", "cert-a", ["a.test"])
    ca.install(prefix / "certs", "cert-b", ["*.b.test"])
    self_signed(prefix / "certs", "_fallback", "nxmesh fallback")
    tls_on = {"entry_points": ["http", "https"]}
    ws = workspace(
        certificate("cert-a", ["a.test"]),
        certificate("cert-b", ["*.b.test"]),
        vhost(
            "a",
            ["a.test"],
            **tls_on,
            tls={
                "mode": "manual",
                "certificate": "cert-a",
                "redirect_http": True,
                "hsts": {"max_age": "1d", "include_subdomains": True},
            },
        ),
        vhost("b", ["*.b.test"], **tls_on, tls={"mode": "manual", "certificate": "cert-b"}),
    )
    ports = Ports.pick()
    view = tls_view(prefix, ports, {"cert-a", "cert-b"})
    verified = tls_client(ca)
    async with served(prefix, {"ws": ws}, view) as (_, rendered):
        a = await request(ports.host, ports.https, "/", hostname="a.test", tls=verified)
        b = await request(ports.host, ports.https, "/", hostname="x.b.test", tls=verified)
        unknown = await request(
            ports.host, ports.https, "/", hostname="c.test", tls=tls_client(None)
        )
        no_sni = await request(
            ports.host, ports.https, "/", hostname="a.test", send_sni=False, tls=tls_client(None)
        )
        redirect = await get(ports, "a.test", "/page?q=1")
        b_plain = await get(ports, "y.b.test")
        h2 = await tls_handshake_alpn(ports, "a.test", tls_client(ca, ["h2", "http/1.1"]))
    assert (a.status, a.body, a.peer_common_name) == (200, b"a", "a.test")
    assert a.headers["strict-transport-security"] == "max-age=86400; includeSubDomains"
    assert (b.status, b.body, b.peer_common_name) == (200, b"b", "*.b.test")
    assert "strict-transport-security" not in b.headers
    assert (unknown.status, unknown.peer_common_name) == (421, "nxmesh fallback")
    assert no_sni.peer_common_name == "nxmesh fallback"
    assert no_sni.status == 200  # the Host header still finds the vhost
    assert redirect.status == 308
    assert redirect.headers["location"] == f"https://a.test:{ports.https}/page?q=1"
    assert (b_plain.status, b_plain.body) == (200, b"b")  # no redirect asked for
    assert "strict-transport-security" not in b_plain.headers
    assert h2 == "h2"
    assert {k: v.state for k, v in rendered.units.items()} == {
        "ws/vhost/a": "ok",
        "ws/vhost/b": "ok",
    }
    # one TLS context for the address, not one per vhost
    conf = b"".join(rendered.files.values()).decode()
    assert conf.count("ssl_certificate ") == 1


async def test_tls_vhost_without_its_certificate_is_degraded_but_serves_http(
    tmp_path: Path,
) -> None:
    prefix = make_prefix(tmp_path)
    self_signed(prefix / "certs", "_fallback", "nxmesh fallback")
    ws = workspace(
        certificate("missing", ["m.test"]),
        vhost(
            "m",
            ["m.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "missing", "redirect_http": True},
        ),
    )
    ports = Ports.pick()
    async with served(prefix, {"ws": ws}, tls_view(prefix, ports, set())) as (_, rendered):
        plain = await get(ports, "m.test")
        secure = await request(
            ports.host, ports.https, "/", hostname="m.test", tls=tls_client(None)
        )
    assert (plain.status, plain.body) == (200, b"m")  # not redirected to a broken https
    assert (secure.status, secure.peer_common_name) == (421, "nxmesh fallback")
    status = rendered.units["ws/vhost/m"]
    assert status.state == "degraded"
    assert "certificate 'missing' is not installed" in status.reason
    assert "not redirected" in status.reason


async def test_acme_challenge_is_served_on_redirecting_and_unknown_hosts(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path)
    (prefix / "acme" / "tok").write_text("tok.key")
    ws = workspace(
        certificate("issued", ["acme.test"], source="acme"),
        vhost(
            "site",
            ["acme.test"],
            entry_points=["http", "https"],
            tls={"mode": "acme", "redirect_http": True},
        ),
    )
    ports = Ports.pick()
    async with served(prefix, {"ws": ws}, tls_view(prefix, ports, {"issued"})):
        on_redirect = await get(ports, "acme.test", "/.well-known/acme-challenge/tok")
        on_default = await get(ports, "other.test", "/.well-known/acme-challenge/tok")
        page = await get(ports, "acme.test", "/")
    assert (on_redirect.status, on_redirect.body) == (200, b"tok.key")
    assert (on_default.status, on_default.body) == (200, b"tok.key")
    assert page.status == 308


async def test_stream_proxies_tcp_and_udp(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_backend(nursery, "tcp-app")
        udp_port = await start_udp_echo(nursery)
        tcp_port, udp_listen, dead_port = (
            free_port("127.0.0.3"),
            free_port("127.0.0.3", trio.socket.SOCK_DGRAM),
            free_port("127.0.0.3"),
        )
        ws = workspace(
            upstream("tcp", app.address),
            upstream("udp", f"127.0.0.1:{udp_port}"),
            upstream("nowhere", "nowhere.internal:9"),
            stream("t", tcp_port, "tcp", address="127.0.0.3"),
            # a UDP session lasts until proxy_timeout; keep it short so QUIT is quick
            stream(
                "u", udp_listen, "udp", address="127.0.0.3", protocol="udp", proxy_timeout="300ms"
            ),
            stream("d", dead_port, "nowhere", address="127.0.0.3"),
        )
        ports = Ports.pick()
        prefix = tmp_path
        async with served(prefix, {"ws": ws}, make_view(prefix, ports)) as (_, rendered):
            through = await request("127.0.0.3", tcp_port, "/s", hostname="stream.test")
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock, trio.fail_after(5):
                await sock.connect(("127.0.0.3", udp_listen))
                await sock.send(b"ping")
                answer = await sock.recv(100)
            closed = await trio.open_tcp_stream("127.0.0.3", dead_port)
            async with closed:
                with trio.fail_after(5):
                    eof = await closed.receive_some(100)
        nursery.cancel_scope.cancel()
    assert through.json()["backend"] == "tcp-app"
    assert answer == b"udp:ping"
    assert eof == b""  # accepted and closed at once: no usable upstream
    assert rendered.units["ws/stream/d"].state == "degraded"
    assert rendered.units["ws/stream/t"].state == "ok"


async def test_reload_serves_the_new_tree_with_new_workers(tmp_path: Path) -> None:
    from render import render
    from tests.render.scenario import SETTINGS

    ports = Ports.pick()
    view = make_view(tmp_path, ports)
    before = workspace(vhost("one", ["one.test"]))
    after = workspace(vhost("one", ["one.test"]), vhost("two", ["two.test"]))
    async with served(tmp_path, {"ws": before}, view) as (nginx, _):
        assert (await get(ports, "two.test")).status == 404
        write_tree(tmp_path, render(SETTINGS, {"ws": after}, view).files)
        new_workers = await nginx.reload()  # returns once the old workers are gone too
        two = await get(ports, "two.test")
    assert new_workers
    assert (two.status, two.body) == (200, b"two")
