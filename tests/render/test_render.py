"""render(): the pure function - layout, determinism, unit statuses, TLS and upstream rules.

No nginx here: the output is read with tests/render/nginxconf.py, which tokenises as
nginx does, so assertions are about directives rather than substrings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crdt.schema import Entity, MeshSettings, WorkspaceState
from render import Listen, NodeView, Rendered, render, revision_of
from render.sizing import hash_size
from render.tls import covers
from tests.crdt.strategies import sample_state
from tests.render.nginxconf import Directive, parse_tree, walk
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

PREFIX = Path("/srv/nxmesh")


def view(**over: object) -> NodeView:
    prefix = over.pop("prefix", PREFIX)
    return make_view(prefix, **over)  # type: ignore[arg-type]


def directives(rendered: Rendered) -> list[Directive]:
    return [d for _, d in walk(parse_tree(rendered.files))]


def named(rendered: Rendered, name: str) -> list[Directive]:
    return [d for d in directives(rendered) if d.name == name]


def servers(rendered: Rendered) -> list[Directive]:
    return [d for d in named(rendered, "server") if d.block is not None and d.args == []]


def server_for(rendered: Rendered, host: str) -> Directive:
    """The vhost server block (not a shared redirect or default server) serving ``host``."""
    (found,) = [
        s
        for s in servers(rendered)
        if "/vhosts/" in s.file and any(host in d.args for d in inner(s, "server_name"))
    ]
    return found


def locations(block: Directive) -> list[Directive]:
    """The block's own locations (not the ACME challenge location)."""
    return [d for d in inner(block, "location") if d.args[0] != "^~"]


def inner(block: Directive, name: str) -> list[Directive]:
    return [d for d in block.block or [] if d.name == name]


def tls_map(rendered: Rendered) -> dict[str, str]:
    (cert_map,) = [d for d in named(rendered, "map") if d.args == ["$ssl_server_name", "$nxm_cert"]]
    return {d.name: d.args[0] for d in cert_map.block or [] if d.args}


# --- determinism, layout, revision ------------------------------------------------------


def test_same_input_same_bytes_whatever_the_mapping_order() -> None:
    state = sample_state()
    reordered = WorkspaceState(
        upstreams=dict(reversed(state.upstreams.items())),
        virtual_hosts=dict(reversed(state.virtual_hosts.items())),
        streams=dict(state.streams),
        certificates=dict(state.certificates),
        access_lists=dict(state.access_lists),
    )
    other = workspace(vhost("z", ["z.test"]), vhost("a", ["a.test"]))
    one = render(SETTINGS, {"ws1": state, "ws2": other}, view())
    two = render(SETTINGS, {"ws2": other, "ws1": reordered}, view())
    assert one.files == two.files
    assert one.revision == two.revision == revision_of(one.files)
    assert render(SETTINGS, {"ws1": state}, view(node="other")).revision != one.revision


def test_revision_frames_paths_and_contents() -> None:
    assert revision_of({"a": b"bc"}) != revision_of({"ab": b"c"})
    assert revision_of({"a": b"x", "b": b""}) != revision_of({"a": b"xb"})
    assert len(revision_of({})) == 64


def test_layout_one_file_per_unit_and_every_include_resolves() -> None:
    ws = workspace(
        upstream("app", "10.0.0.1:80"),
        vhost("web", ["web.test"], locations=[proxy("/", "app")]),
        vhost("docs", ["docs.test"]),
        stream("dns", 5353, "app", protocol="udp"),
    )
    rendered = render(SETTINGS, {"alpha": ws}, view())
    assert {p for p in rendered.files if "/alpha/" in p} == {
        "http.d/alpha/upstreams.conf",
        "http.d/alpha/vhosts/web.conf",
        "http.d/alpha/vhosts/docs.conf",
        "stream.d/alpha/upstreams.conf",
        "stream.d/alpha/streams/dns.conf",
    }
    tree = parse_tree(rendered.files)  # fails on an include of a file not in the tree
    assert {d.file for _, d in walk(tree)} == set(rendered.files)  # and nothing unused
    assert set(rendered.units) == {"alpha/vhost/web", "alpha/vhost/docs", "alpha/stream/dns"}


def test_main_context_lives_under_the_prefix() -> None:
    settings = MeshSettings.model_validate({"worker_shutdown_timeout": "7s"})
    rendered = render(settings, {}, view())
    top = {d.name: d.args for d in parse_tree(rendered.files)}
    assert top["pid"] == [f"{PREFIX}/logs/nginx.pid"]
    assert top["error_log"] == [f"{PREFIX}/logs/error.log", "notice"]
    assert top["worker_shutdown_timeout"] == ["7s"]
    assert top["worker_processes"] == ["1"]
    assert "load_module" not in top  # no stream proxies, no stream module
    http = {d.name: d.args for d in named(rendered, "http")[0].block or []}
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert http[f"{temp}_temp_path"] == [f"{PREFIX}/temp/{temp}"]
    assert "daemon" not in top  # the runner passes -g 'daemon off;' (Docker's nginx does)


def test_user_directive_only_when_the_view_names_one() -> None:
    assert not named(render(SETTINGS, {}, view(user=None)), "user")
    assert named(render(SETTINGS, {}, view(user="www-data")), "user")[0].args == ["www-data"]


# --- unit statuses -----------------------------------------------------------------------


def test_broken_references_skip_only_their_units() -> None:
    ws = workspace(
        upstream("app", "10.0.0.1:80"),
        vhost("good", ["good.test"], locations=[proxy("/", "app")]),
        vhost("bad", ["bad.test"], locations=[proxy("/", "missing")]),
        vhost("off", ["off.test"], enabled=False),
        stream("s", 7000, "missing"),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    assert rendered.units["ws/vhost/good"].state == "ok"
    bad = rendered.units["ws/vhost/bad"]
    assert bad.state == "skipped"
    assert "locations[0].upstream" in bad.reason
    assert "missing" in bad.reason
    assert rendered.units["ws/vhost/off"].reason == "disabled"
    assert rendered.units["ws/stream/s"].state == "skipped"
    assert "http.d/ws/vhosts/bad.conf" not in rendered.files
    assert "bad.test" not in b"".join(rendered.files.values()).decode()


def test_an_entity_stored_under_the_wrong_key_takes_its_users_with_it() -> None:
    ws = workspace(vhost("web", ["web.test"], locations=[proxy("/", "app")]))
    ws.upstreams["app"] = upstream("other-id", "10.0.0.1:80")
    rendered = render(SETTINGS, {"ws": ws}, view())
    assert rendered.units["ws/vhost/web"].state == "skipped"
    assert "upstream 'app'" in rendered.units["ws/vhost/web"].reason


def test_ids_that_name_files_are_checked() -> None:
    ws = workspace(vhost("web", ["web.test"]))
    ws.virtual_hosts["../../evil"] = ws.virtual_hosts.pop("web")
    bad_ws = workspace(vhost("web", ["other.test"]))
    rendered = render(SETTINGS, {"ws": ws, "../up": bad_ws}, view())
    assert rendered.units["ws/vhost/../../evil"].state == "skipped"
    assert rendered.units["../up/vhost/web"].state == "skipped"
    assert "workspace id" in rendered.units["../up/vhost/web"].reason
    assert not [p for p in rendered.files if ".." in p]


def test_excluded_units_leave_no_trace() -> None:
    ws = workspace(
        certificate("c", ["x.test"]),
        upstream("only-x", "10.0.0.1:80"),
        vhost(
            "x",
            ["x.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "c", "redirect_http": True},
            locations=[proxy("/", "only-x")],
        ),
        vhost("y", ["y.test"]),
    )
    v = view(installed_certificates=frozenset({"c"}))
    full = render(SETTINGS, {"ws": ws}, v)
    assert tls_map(full)["x.test"] == "c"
    less = render(SETTINGS, {"ws": ws}, v, exclude=frozenset({"ws/vhost/x"}))
    assert less.units["ws/vhost/x"].reason == "excluded"
    assert less.units["ws/vhost/y"].state == "ok"
    text = b"".join(less.files.values()).decode()
    assert "x.test" not in text
    assert "only-x" not in text
    assert "http.d/_redirect.conf" not in less.files
    assert less.revision != full.revision


# --- upstreams --------------------------------------------------------------------------


def test_upstreams_are_namespaced_per_workspace() -> None:
    a = workspace(
        upstream("app", "10.0.0.1:80"), vhost("web", ["a.test"], locations=[proxy("/", "app")])
    )
    b = workspace(
        upstream("app", "10.0.0.2:80"), vhost("web", ["b.test"], locations=[proxy("/", "app")])
    )
    rendered = render(SETTINGS, {"a": a, "b": b}, view())
    blocks = {d.args[0]: d for d in named(rendered, "upstream")}
    assert set(blocks) == {"nxm.a.app", "nxm.b.app"}
    assert inner(blocks["nxm.a.app"], "server")[0].args == ["10.0.0.1:80"]
    (loc,) = locations(server_for(rendered, "b.test"))
    assert inner(loc, "proxy_pass")[0].args == ["http://nxm.b.app"]


def test_host_names_become_the_resolved_addresses_only() -> None:
    ws = workspace(
        upstream(
            "app",
            servers=[
                {"address": "app.internal:8080", "weight": 3},
                {"address": "gone.internal:8080"},
                {"address": "[2001:db8::5]:81", "backup": True},
            ],
            method="least_conn",
        ),
        vhost("web", ["web.test"], locations=[proxy("/", "app")]),
    )
    resolved = {"app.internal": ("10.0.0.9", "10.0.0.3", "10.0.0.9", "not-an-ip")}
    rendered = render(SETTINGS, {"ws": ws}, view(resolved=resolved))
    (block,) = named(rendered, "upstream")
    assert [d.args for d in block.block or []] == [
        [],  # least_conn
        ["10.0.0.3:8080", "weight=3"],
        ["10.0.0.9:8080", "weight=3"],
        ["[2001:db8::5]:81", "backup"],
    ]
    status = rendered.units["ws/vhost/web"]
    assert status.state == "degraded"
    assert "gone.internal" in status.reason


def test_backups_serve_as_primaries_when_no_primary_resolves() -> None:
    ws = workspace(
        upstream(
            "app",
            servers=[{"address": "nope.internal:80"}, {"address": "10.0.0.1:80", "backup": True}],
        ),
        vhost("web", ["web.test"], locations=[proxy("/", "app")]),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    (block,) = named(rendered, "upstream")
    assert inner(block, "server")[0].args == ["10.0.0.1:80"]
    assert "backups serve as primaries" in rendered.units["ws/vhost/web"].reason


def test_an_upstream_with_no_usable_server_is_not_rendered_and_its_users_answer_503() -> None:
    ws = workspace(
        upstream("down", servers=[{"address": "10.0.0.1:80", "down": True}]),
        vhost(
            "web",
            ["web.test"],
            locations=[proxy("/api/", "down"), {"path": "/", "action": "return", "status": 200}],
        ),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    assert not named(rendered, "upstream")
    api = next(d for d in locations(server_for(rendered, "web.test")) if d.args == ["/api/"])
    assert inner(api, "return")[0].args == [
        "503",
        "upstream down has no usable server on this node",
    ]
    status_headers = [d.args for d in inner(api, "add_header") if d.args[0] == "X-NxMesh-Status"]
    assert status_headers
    assert status_headers[0][1].startswith("degraded: upstream down has no usable server")
    assert rendered.units["ws/vhost/web"].state == "degraded"


def test_every_balancing_method_and_server_parameter() -> None:
    base = {"servers": [{"address": "10.0.0.1:80"}]}
    ws = workspace(
        upstream("rr", "10.0.0.1:80"),
        upstream("lc", "10.0.0.1:80", method="least_conn"),
        upstream("ih", "10.0.0.1:80", method="ip_hash"),
        upstream("h", method="hash", hash_key="$request_uri", consistent=True, **base),
        upstream("r", method="random", **base),
        upstream("r2", method="random_two_least_conn", **base),
        upstream(
            "params",
            servers=[
                {"address": "10.0.0.1:80", "weight": 5, "max_fails": 2, "fail_timeout": "30s"},
                {"address": "10.0.0.2:80", "down": True},
                {"address": "10.0.0.3:80", "backup": True},
            ],
            keepalive=16,
            keepalive_timeout="75s",
            next_upstream={"on": ["error", "http_502"], "tries": 2, "timeout": "5s"},
        ),
        vhost(
            "web",
            ["web.test"],
            locations=[proxy(f"/{u}/", u) for u in ("rr", "lc", "ih", "h", "r", "r2", "params")],
        ),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    first = {d.args[0]: (d.block or [])[0] for d in named(rendered, "upstream")}
    methods = {name.split(".")[-1]: (d.name, d.args) for name, d in first.items()}
    assert methods["lc"] == ("least_conn", [])
    assert methods["ih"] == ("ip_hash", [])
    assert methods["h"] == ("hash", ["$request_uri", "consistent"])
    assert methods["r"] == ("random", [])
    assert methods["r2"] == ("random", ["two", "least_conn"])
    assert methods["rr"][0] == "server"
    params = next(d for d in named(rendered, "upstream") if d.args == ["nxm.ws.params"])
    assert [d.args for d in params.block or []] == [
        ["10.0.0.1:80", "weight=5", "max_fails=2", "fail_timeout=30s"],
        ["10.0.0.2:80", "down"],
        ["10.0.0.3:80", "backup"],
        ["16"],
        ["75s"],
    ]
    loc = next(d for d in locations(server_for(rendered, "web.test")) if d.args == ["/params/"])
    got = {d.name: d.args for d in loc.block or []}
    assert got["proxy_next_upstream"] == ["error", "http_502"]
    assert got["proxy_next_upstream_tries"] == ["2"]
    assert got["proxy_next_upstream_timeout"] == ["5s"]
    headers = {d.args[0]: d.args[1] for d in inner(loc, "proxy_set_header")}
    assert headers["Connection"] == ""  # keep-alive needs the header cleared
    assert headers["Host"] == "$host"  # and the defaults repeated (no inheritance)


# --- TLS --------------------------------------------------------------------------------


def tls_fleet(count: int) -> WorkspaceState:
    entities: list[Entity] = []
    for i in range(count):
        entities.append(certificate(f"c{i}", [f"s{i}.test"]))
        entities.append(
            vhost(
                f"v{i}",
                [f"s{i}.test"],
                entry_points=["http", "https"],
                tls={"mode": "manual", "certificate": f"c{i}", "redirect_http": i % 2 == 0},
            )
        )
    return workspace(*entities)


def test_tls_is_one_context_per_address_with_certificates_chosen_by_sni() -> None:
    ws = tls_fleet(20)
    installed = frozenset(ws.certificates)
    rendered = render(
        SETTINGS, {"ws": ws}, view(installed_certificates=installed, certificates_dir="/certs")
    )
    certs = named(rendered, "ssl_certificate")
    assert [d.args for d in certs] == [["/certs/${nxm_cert}.crt"]]
    assert [d.args for d in named(rendered, "ssl_certificate_key")] == [["/certs/${nxm_cert}.key"]]
    assert all(d.file == "http.d/_default.conf" for d in certs)
    mapping = tls_map(rendered)
    assert mapping.pop("default") == "_fallback"
    assert mapping.pop("hostnames", None) is None
    assert mapping == {f"s{i}.test": f"c{i}" for i in range(20)}
    ssl_listens = [d.args for d in named(rendered, "listen") if "ssl" in d.args]
    assert ssl_listens == [["127.0.0.2:8443", "ssl", "http2", "default_server"]]
    # every vhost listens on the TLS address without options of its own
    vhost_listens = {
        tuple(d.args) for d in named(rendered, "listen") if d.file.startswith("http.d/ws/")
    }
    assert vhost_listens == {("127.0.0.2:8443",), ("127.0.0.2:8080",)}


def test_http2_only_when_some_vhost_wants_it() -> None:
    ws = workspace(
        certificate("c", ["a.test"]),
        vhost(
            "a",
            ["a.test"],
            entry_points=["https"],
            tls={"mode": "manual", "certificate": "c", "http2": False},
        ),
    )
    rendered = render(SETTINGS, {"ws": ws}, view(installed_certificates=frozenset({"c"})))
    assert [d.args for d in named(rendered, "listen") if "ssl" in d.args] == [
        ["127.0.0.2:8443", "ssl", "default_server"]
    ]


def test_redirects_are_shared_and_carry_the_https_port() -> None:
    ws = tls_fleet(4)
    rendered = render(SETTINGS, {"ws": ws}, view(installed_certificates=frozenset(ws.certificates)))
    (redirect,) = [s for s in servers(rendered) if s.file == "http.d/_redirect.conf"]
    assert inner(redirect, "server_name")[0].args == ["s0.test", "s2.test"]
    (root,) = [d for d in inner(redirect, "location") if d.args == ["/"]]
    assert inner(root, "return")[0].args == ["308", "https://$host:8443$request_uri"]
    port_443 = render(
        SETTINGS,
        {"ws": ws},
        view(
            installed_certificates=frozenset(ws.certificates),
            entry_points={"http": (Listen("*", 80),), "https": (Listen("*", 443),)},
        ),
    )
    (redirect,) = [s for s in servers(port_443) if s.file == "http.d/_redirect.conf"]
    (root,) = [d for d in inner(redirect, "location") if d.args == ["/"]]
    assert inner(root, "return")[0].args == ["308", "https://$host$request_uri"]
    assert inner(redirect, "listen")[0].args == ["80"]


def test_hsts_is_never_sent_over_plain_http() -> None:
    hsts = {"max_age": "2d", "preload": True}
    ws = workspace(
        certificate("c", ["a.test", "b.test"]),
        vhost(
            "only-tls",
            ["a.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "c", "redirect_http": True, "hsts": hsts},
        ),
        vhost(
            "both",
            ["b.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "c", "hsts": hsts},
        ),
    )
    rendered = render(SETTINGS, {"ws": ws}, view(installed_certificates=frozenset({"c"})))
    literal = {d.args[0]: d.args[1] for d in inner(server_for(rendered, "a.test"), "add_header")}
    assert literal["Strict-Transport-Security"] == "max-age=172800; preload"
    both = {d.args[0]: d.args[1] for d in inner(server_for(rendered, "b.test"), "add_header")}
    variable = both["Strict-Transport-Security"]
    assert variable.startswith("$nxm_hsts_")
    (hsts_map,) = [d for d in named(rendered, "map") if d.args == ["$https", variable]]
    assert {d.name: d.args for d in hsts_map.block or []} == {
        "default": [""],
        "on": ["max-age=172800; preload"],
    }


def test_missing_or_ambiguous_certificates_degrade_without_breaking_http() -> None:
    mine = workspace(
        certificate("shared-id", ["a.test"]),
        certificate("absent", ["b.test"]),
        vhost(
            "a",
            ["a.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "shared-id", "redirect_http": True},
        ),
        vhost(
            "b",
            ["b.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": "absent", "redirect_http": True},
        ),
    )
    theirs = workspace(certificate("shared-id", ["evil.test"]))
    rendered = render(
        SETTINGS,
        {"mine": mine, "theirs": theirs},
        view(installed_certificates=frozenset({"shared-id"})),
    )
    a, b = rendered.units["mine/vhost/a"], rendered.units["mine/vhost/b"]
    assert a.state == b.state == "degraded"
    assert "several workspaces (mine, theirs)" in a.reason
    assert "'absent' is not installed" in b.reason
    assert set(tls_map(rendered)) == {"default", "hostnames"} - {"hostnames"}
    for host in ("a.test", "b.test"):  # still served over plain HTTP, not redirected
        block = server_for(rendered, host)
        assert [d.args for d in inner(block, "listen")] == [["127.0.0.2:8080"]]
    assert "http.d/_redirect.conf" not in rendered.files


def test_acme_vhosts_take_the_freshest_installed_certificate_covering_each_name() -> None:
    ws = workspace(
        certificate(
            "old",
            ["a.test", "b.test"],
            source="acme",
            not_before="2025-01-01T00:00:00Z",
            not_after="2025-04-01T00:00:00Z",
        ),
        certificate(
            "new",
            ["a.test"],
            source="acme",
            not_before="2025-03-01T00:00:00Z",
            not_after="2025-06-01T00:00:00Z",
        ),
        certificate(
            "newest-not-installed",
            ["a.test", "b.test"],
            source="acme",
            not_after="2026-01-01T00:00:00Z",
        ),
        certificate("manual", ["c.test"]),
        vhost(
            "site",
            ["a.test", "b.test", "c.test"],
            entry_points=["http", "https"],
            tls={"mode": "acme", "redirect_http": True},
        ),
    )
    rendered = render(
        SETTINGS, {"ws": ws}, view(installed_certificates=frozenset({"old", "new", "manual"}))
    )
    mapping = tls_map(rendered)
    assert (mapping["a.test"], mapping["b.test"]) == ("new", "old")
    assert "c.test" not in mapping  # a manual certificate is not an ACME one
    status = rendered.units["ws/vhost/site"]
    assert status.state == "degraded"
    assert "no ACME certificate installed for c.test" in status.reason


def test_certificate_wildcards_cover_one_label() -> None:
    assert covers("*.example.com", "www.example.com")
    assert not covers("*.example.com", "a.b.example.com")
    assert not covers("*.example.com", "example.com")
    assert covers("example.com", "example.com")


# --- names, defaults, ACME, sizing --------------------------------------------------------


def test_a_name_served_twice_goes_to_the_first_unit() -> None:
    first = workspace(vhost("one", ["dup.test", "one.test"]))
    second = workspace(vhost("two", ["dup.test", "two.test"]), vhost("three", ["dup.test"]))
    rendered = render(SETTINGS, {"a": first, "b": second}, view())
    assert inner(server_for(rendered, "two.test"), "server_name")[0].args == ["two.test"]
    assert rendered.units["b/vhost/two"].state == "degraded"
    assert "dup.test is already served by a/vhost/one" in rendered.units["b/vhost/two"].reason
    assert rendered.units["b/vhost/three"].state == "skipped"
    owners = [
        s for s in servers(rendered) if any("dup.test" in d.args for d in inner(s, "server_name"))
    ]
    assert len(owners) == 1


def test_every_plain_http_server_serves_the_acme_challenge() -> None:
    ws = tls_fleet(2)
    ws.virtual_hosts["plain"] = vhost("plain", ["plain.test"])
    rendered = render(
        SETTINGS,
        {"ws": ws},
        view(installed_certificates=frozenset(ws.certificates), acme_challenge_dir="/var/acme/"),
    )
    for block in servers(rendered):
        listens = [d.args[0] for d in inner(block, "listen")]
        acme = [
            d for d in inner(block, "location") if d.args == ["^~", "/.well-known/acme-challenge/"]
        ]
        if "127.0.0.2:8080" in listens:
            assert acme, block
            assert inner(acme[0], "alias")[0].args == ["/var/acme/"]
            assert inner(acme[0], "allow")[0].args == ["all"]
        else:
            assert not acme


def test_default_servers_answer_unknown_names_on_every_entry_point() -> None:
    rendered = render(SETTINGS, {}, view())
    defaults = [s for s in servers(rendered) if s.file == "http.d/_default.conf"]
    assert [inner(s, "listen")[0].args for s in defaults] == [
        ["127.0.0.2:8080", "default_server"],
        ["127.0.0.2:8443", "ssl", "default_server"],
    ]
    http_root = next(d for d in inner(defaults[0], "location") if d.args == ["/"])
    assert inner(http_root, "return")[0].args == ["404", "no virtual host for this name\n"]
    https_root = next(d for d in inner(defaults[1], "location") if d.args == ["/"])
    assert inner(https_root, "return")[0].args[0] == "421"


def test_hash_sizes_scale_with_the_names() -> None:
    ws = workspace(*(vhost(f"v{i}", [f"a{i}.test", f"b{i}.test"]) for i in range(800)))
    rendered = render(SETTINGS, {"ws": ws}, view())
    http = {d.name: d.args for d in named(rendered, "http")[0].block or []}
    assert int(http["server_names_hash_max_size"][0]) >= 2 * 1600
    assert http["server_names_hash_bucket_size"] == ["128"]
    assert hash_size(10_000, 20).max_size == 20_000
    assert hash_size(1, 200).bucket_size == 256  # a long name needs a bigger bucket
    assert hash_size(1, 253).bucket_size == 320


# --- streams ------------------------------------------------------------------------------


def test_streams_bind_the_views_stream_address_and_do_not_collide() -> None:
    ws1 = workspace(
        upstream("app", "10.0.0.1:53"),
        stream("dns", 5353, "app", protocol="udp"),
        stream("tcp", 5353, "app"),
        stream("other", 8080, "app"),  # another address than the http entry point's
    )
    # the http entry point's own address and port
    ws3 = workspace(upstream("app", "10.0.0.1:80"), stream("web", 8080, "app", address="127.0.0.2"))
    ws2 = workspace(upstream("app", "10.0.0.2:53"), stream("dns", 5353, "app", protocol="udp"))
    rendered = render(SETTINGS, {"a": ws1, "b": ws2, "c": ws3}, view(stream_address="127.0.0.9"))
    assert rendered.units["a/stream/dns"].state == "ok"
    assert rendered.units["a/stream/tcp"].state == "ok"  # tcp and udp may share a port
    assert "HTTP entry point" in rendered.units["c/stream/web"].reason
    assert "already used by a/stream/dns" in rendered.units["b/stream/dns"].reason
    listens = sorted(
        tuple(d.args) for d in named(rendered, "listen") if d.file.startswith("stream.d")
    )
    assert listens == [("127.0.0.9:5353",), ("127.0.0.9:5353", "udp"), ("127.0.0.9:8080",)]
    assert named(rendered, "load_module")[0].args == ["/usr/lib/nginx/modules/ngx_stream_module.so"]


def test_access_lists_apply_to_vhosts_and_streams() -> None:
    ws = workspace(
        access_list("office", [("allow", "192.0.2.0/24"), ("deny", "192.0.2.7")]),
        upstream("app", "10.0.0.1:22"),
        vhost("web", ["web.test"], access_list="office"),
        stream("ssh", 2222, "app", access_list="office"),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    rules = [
        (d.name, d.args)
        for d in server_for(rendered, "web.test").block or []
        if d.name in ("allow", "deny")
    ]
    assert rules == [("allow", ["192.0.2.0/24"]), ("deny", ["192.0.2.7/32"]), ("deny", ["all"])]
    (ssh,) = [s for s in servers(rendered) if s.file.startswith("stream.d")]
    assert [(d.name, d.args) for d in ssh.block or [] if d.name in ("allow", "deny")] == rules
    (root,) = locations(server_for(rendered, "web.test"))
    (gate,) = inner(root, "if")
    assert inner(gate, "return")[0].args == ["403"]


# --- the node view ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "over",
    [
        {"prefix": "relative/prefix"},
        {"prefix": "/srv/$nginx"},
        {"certificates_dir": "/certs/*"},
        {"user": "root; daemon on"},
        {"node": "line\nbreak"},
        {"stream_address": "localhost"},
        {"entry_points": {"http": (Listen("127.0.0.1", 80),), "https": (Listen("127.0.0.1", 80),)}},
    ],
)
def test_an_unusable_node_view_fails_the_render(over: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"node view|entry point"):
        render(SETTINGS, {}, view(**over))


def test_a_node_name_is_quoted_not_rejected() -> None:
    rendered = render(SETTINGS, {}, view(node='n1"; $x {'))
    (header,) = [d for d in named(rendered, "add_header") if d.file == "nginx.conf"]
    assert header.args == ["X-NxMesh-Node", 'n1"; ${nxm_dollar}x {', "always"]


def test_render_imports_no_io_machinery() -> None:
    code = (
        "import sys, render\n"
        "bad = {'trio', 'pycrdt', 'sqlite3', 'mesh', 'node'} & set(sys.modules)\n"
        "print(sorted(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_vhost_without_a_catch_all_answers_404_rather_than_serving_files() -> None:
    ws = workspace(
        vhost(
            "api", ["api.test"], locations=[{"path": "/api/", "action": "return", "status": 200}]
        ),
        vhost("root", ["root.test"]),
    )
    rendered = render(SETTINGS, {"ws": ws}, view())
    api = {tuple(d.args): d for d in locations(server_for(rendered, "api.test"))}
    assert set(api) == {("/api/",), ("/",)}
    assert inner(api[("/",)], "return")[0].args == ["404"]
    assert [d.args for d in locations(server_for(rendered, "root.test"))] == [["/"]]
