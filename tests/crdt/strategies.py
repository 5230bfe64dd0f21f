"""Hypothesis strategies and sample data for schema models (render/ property tests use them).

Strategies draw *plain dicts* in the shape the API accepts, then build models with
``model_validate``; the property test in test_schema_properties.py checks every draw is
valid, so a strategy that drifts from the schema fails loudly instead of filtering.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from crdt.schema import (
    AccessList,
    Certificate,
    StreamProxy,
    Upstream,
    VirtualHost,
    WorkspaceState,
)

# --- sample dicts (one valid example per kind) -----------------------------------------


def upstream_dict(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "app",
        "name": "App servers",
        "method": "least_conn",
        "servers": [
            {"address": "10.0.0.1:8080", "weight": 2, "max_fails": 3, "fail_timeout": "30s"},
            {"address": "app2.internal:8080"},
            {"address": "[2001:db8::1]:8080", "backup": True},
        ],
        "keepalive": 32,
        "next_upstream": {"on": ["error", "timeout", "http_502"], "tries": 3, "timeout": "10s"},
    }
    data.update(over)
    return data


def vhost_dict(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "web",
        "name": "Public site",
        "server_names": ["example.com", "www.example.com", "*.example.org", "example.*"],
        "entry_points": ["http", "https"],
        "tls": {
            "mode": "manual",
            "certificate": "cert1",
            "redirect_http": True,
            "hsts": {"max_age": "365d", "include_subdomains": True},
            "http2": True,
        },
        "locations": [
            {"path": "/", "action": "proxy", "upstream": "app"},
            {"path": "/old", "match": "exact", "action": "return", "status": 301, "url": "/new"},
            {"path": "/health", "action": "return", "status": 200, "text": "ok"},
            {"path": "/static/", "action": "static", "root": "/srv/www/static"},
        ],
        "request_headers": {"X-Forwarded-Proto": "https"},
        "response_headers": {"X-Frame-Options": "DENY"},
        "client_max_body_size": "10m",
        "proxy_read_timeout": "60s",
        "websocket": True,
        "access_list": "office",
    }
    data.update(over)
    return data


def stream_dict(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "dns",
        "name": "DNS",
        "port": 53,
        "protocol": "udp",
        "upstream": "app",
        "proxy_timeout": "5s",
    }
    data.update(over)
    return data


def certificate_dict(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "cert1",
        "name": "example.com",
        "names": ["example.com", "*.example.com"],
        "source": "manual",
        "not_before": "2025-01-01T00:00:00Z",
        "not_after": "2026-01-01T00:00:00+00:00",
        "key_ref": "ws1:key:cert1",
        "fingerprint": "ab" * 32,
    }
    data.update(over)
    return data


def access_list_dict(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "office",
        "name": "Office only",
        "rules": [
            {"action": "allow", "source": "192.0.2.0/24"},
            {"action": "allow", "source": "2001:db8::/32"},
            {"action": "deny", "source": "all"},
        ],
    }
    data.update(over)
    return data


def sample_state() -> WorkspaceState:
    return WorkspaceState.of(
        [
            Upstream.model_validate(upstream_dict()),
            VirtualHost.model_validate(vhost_dict()),
            StreamProxy.model_validate(stream_dict()),
            Certificate.model_validate(certificate_dict()),
            AccessList.model_validate(access_list_dict()),
        ]
    )


# --- strategies ------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

ids = st.text(_ALNUM, min_size=1, max_size=12)


@st.composite
def labels(draw: st.DrawFn) -> str:
    inner = draw(st.text(_ALNUM + "-", max_size=6))
    first = draw(st.sampled_from(_ALNUM))
    last = draw(st.sampled_from(_ALNUM)) if inner else ""
    return first + inner + last


@st.composite
def host_names(draw: st.DrawFn) -> str:
    parts = draw(st.lists(labels(), min_size=1, max_size=2))
    tld = draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6))
    return ".".join([*parts, tld])


server_names = st.one_of(
    host_names(),
    host_names().map(lambda h: "*." + h),
    labels().filter(lambda s: not s.isdigit()).map(lambda h: h + ".*"),
)

ports = st.integers(1, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
server_addresses = st.one_of(
    st.tuples(ipv4, ports).map(lambda t: f"{t[0]}:{t[1]}"),
    st.tuples(ipv6, ports).map(lambda t: f"[{t[0]}]:{t[1]}"),
    st.tuples(host_names(), ports).map(lambda t: f"{t[0]}:{t[1]}"),
)
durations = st.one_of(
    st.integers(0, 3600).map(lambda n: f"{n}s"),
    st.integers(0, 10_000).map(lambda n: f"{n}ms"),
    st.integers(0, 600),
)
path_prefixes = st.lists(
    st.text(_ALNUM + "-_.~", min_size=1, max_size=8).filter(lambda s: s not in (".", "..")),
    max_size=3,
).map(lambda segs: "/" + "/".join(segs))
header_names = st.tuples(
    st.sampled_from(["X", "X-Api", "Cache-Control", "x-trace"]), st.text(_ALNUM, max_size=4)
).map("".join)
header_values = st.tuples(
    st.text(_ALNUM + "=,./:+*-", min_size=1, max_size=6),
    st.text(_ALNUM + " =,./:+*-", max_size=10),
    st.sampled_from(_ALNUM),
).map("".join)
headers = st.dictionaries(header_names, header_values, max_size=2).filter(
    lambda d: len({k.lower() for k in d}) == len(d)
)


@st.composite
def upstream_server_dicts(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "address": draw(server_addresses),
        "weight": draw(st.integers(1, 1000)),
        "max_fails": draw(st.integers(0, 10)),
        "fail_timeout": draw(durations),
        "down": draw(st.booleans()),
    }


@st.composite
def upstream_dicts(draw: st.DrawFn, ident: str | None = None) -> dict[str, Any]:
    method = draw(
        st.sampled_from(
            ["round_robin", "least_conn", "ip_hash", "hash", "random", "random_two_least_conn"]
        )
    )
    servers = draw(
        st.lists(upstream_server_dicts(), min_size=1, max_size=3, unique_by=lambda s: s["address"])
    )
    if method in ("round_robin", "least_conn") and len(servers) > 1:
        servers[-1]["backup"] = draw(st.booleans())
    data: dict[str, Any] = {
        "id": ident if ident is not None else draw(ids),
        "name": draw(st.sampled_from(["App", "api pool", "Zweig ä"])),
        "method": method,
        "servers": servers,
        "keepalive": draw(st.integers(0, 64)),
    }
    if method == "hash":
        data["hash_key"] = draw(st.sampled_from(["$request_uri", "$remote_addr", "$host$uri"]))
        data["consistent"] = draw(st.booleans())
    return data


@st.composite
def location_dicts(draw: st.DrawFn, upstream_ids: list[str]) -> dict[str, Any]:
    path = draw(path_prefixes)
    actions = ["return", "static"] + (["proxy"] if upstream_ids else [])
    action = draw(st.sampled_from(actions))
    data: dict[str, Any] = {
        "path": path,
        "match": draw(st.sampled_from(["prefix", "exact"])),
        "action": action,
        "response_headers": draw(headers),
    }
    if action == "proxy":
        data["upstream"] = draw(st.sampled_from(upstream_ids))
        data["request_headers"] = draw(headers)
    elif action == "static":
        data["root"] = "/srv/" + draw(st.text(_ALNUM, min_size=1, max_size=8))
    else:
        status = draw(st.sampled_from([200, 204, 301, 302, 307, 308, 403, 404, 503]))
        data["status"] = status
        if status in (301, 302, 303, 307, 308):
            data["url"] = draw(
                st.one_of(path_prefixes, host_names().map(lambda h: f"https://{h}/"))
            )
        elif draw(st.booleans()):
            data["text"] = draw(header_values)
    return data


@st.composite
def vhost_dicts(
    draw: st.DrawFn, upstream_ids: list[str] | None = None, ident: str | None = None
) -> dict[str, Any]:
    upstream_ids = upstream_ids if upstream_ids is not None else []
    locations = draw(
        st.lists(
            location_dicts(upstream_ids),
            min_size=1,
            max_size=3,
            unique_by=lambda loc: (loc["match"], loc["path"]),
        )
    )
    names = draw(st.lists(server_names, min_size=1, max_size=3, unique=True))
    mode = draw(st.sampled_from(["off", "acme"] if all("*" not in n for n in names) else ["off"]))
    tls: dict[str, Any] = {"mode": mode}
    if mode != "off":
        tls["redirect_http"] = draw(st.booleans())
        tls["http2"] = draw(st.booleans())
        if draw(st.booleans()):
            tls["hsts"] = {"max_age": draw(durations), "preload": draw(st.booleans())}
    return {
        "id": ident if ident is not None else draw(ids),
        "name": "site",
        "server_names": names,
        "entry_points": ["http", "https"] if mode != "off" else ["http"],
        "tls": tls,
        "locations": locations,
        "response_headers": draw(headers),
        "client_max_body_size": draw(st.one_of(st.none(), st.sampled_from(["1m", "512k", 0]))),
        "websocket": draw(st.booleans()),
    }


def upstreams(ident: str | None = None) -> st.SearchStrategy[Upstream]:
    return upstream_dicts(ident).map(Upstream.model_validate)


def virtual_hosts(
    upstream_ids: list[str] | None = None, ident: str | None = None
) -> st.SearchStrategy[VirtualHost]:
    return vhost_dicts(upstream_ids, ident).map(VirtualHost.model_validate)


@st.composite
def workspace_states(draw: st.DrawFn) -> WorkspaceState:
    """A workspace whose references all resolve (vhosts point only at drawn upstreams)."""
    ups = draw(st.lists(upstreams(), max_size=3, unique_by=lambda u: u.id))
    up_ids = [u.id for u in ups]
    vhs = draw(st.lists(virtual_hosts(up_ids), max_size=3, unique_by=lambda v: v.id))
    return WorkspaceState.of([*ups, *vhs])
