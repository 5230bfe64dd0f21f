"""A fixed fleet for the snapshots: five members (one quarantined, one suspect, one
revoked), three virtual hosts, two upstreams, four certificates, a few watch events -
shaped as the API answers (docs/openapi.json). NOW pins the console's clock."""

from __future__ import annotations

from typing import Any

from tests.tui.fake_api import Route

NOW = 1_800_000_000.0
"""2027-01-15 08:00:00 UTC."""

WS = "default"
SHOP = "vh0shop0000000000000000000"
BLOG = "vh0blog0000000000000000000"
API = "vh0api00000000000000000000"


def _meta(apply: str = "ok", revision: str = "9f3c1a2b7d4e", state: str = "5be0c41d9a77",
          quarantined: int = 0, reason: str = "") -> dict[str, Any]:  # fmt: skip
    return {"version": "0.1.0", "nginx": "up", "apply": apply, "quarantined": quarantined,
            "reason": reason, "revision": revision, "state": state}  # fmt: skip


MEMBERS: list[dict[str, Any]] = [
    {"name": "n1", "key": "79bee416344d", "address": "10.0.0.1:7946", "state": "alive",
     "labels": {"zone": "a"}, "metadata": _meta("quarantined", quarantined=1)},
    {"name": "n2", "key": "338c2cab663a", "address": "10.0.0.2:7946", "state": "alive",
     "labels": {"zone": "a"}, "metadata": _meta(revision="0d1e2f3a4b5c")},
    {"name": "n3", "key": "a95a8b8dbefe", "address": "10.0.0.3:7946", "state": "alive",
     "labels": {"zone": "b"}, "metadata": _meta(revision="77aa88bb99cc")},
    {"name": "n4", "key": "1af9ab9d1e04", "address": "10.0.0.4:7946", "state": "suspect",
     "labels": {}, "metadata": _meta(revision="3c3c3c3c3c3c", state="e596355383b5")},
    {"name": "n5", "key": "2ee80dfbc14f", "address": "", "state": "revoked",
     "labels": {}, "metadata": {}},
]  # fmt: skip

QUARANTINED_UNIT = f"{WS}/vhost/{API}"


def status(role: str = "admin") -> dict[str, Any]:
    return {
        "node": "n1",
        "key": "79bee416344d",
        "mesh_id": "060be62ea71f95dae1f7c2289ce22518",
        "version": "0.1.0",
        "address": "10.0.0.1:7946",
        "members": {"alive": 3, "suspect": 1},
        "workspaces": [WS],
        "apply": _meta("quarantined", quarantined=1),
        "quarantined": [{"unit": QUARANTINED_UNIT, "reason": "certificate 'api' is not installed"}],
        "units": {},
        "invalid": [],
        "metrics": "127.0.0.1:9464",
        "uptime_s": 86400.0,
        "api": {"caller": {"uid": 1000, "role": role}, "watchers": 1},
    }


def _location(upstream: str) -> dict[str, Any]:
    return {"path": "/", "match": "prefix", "action": "proxy", "upstream": upstream,
            "status": None, "url": None, "text": None, "root": None,
            "request_headers": {}, "response_headers": {}}  # fmt: skip


def _vhost(vid: str, name: str, names: list[str], upstream: str, **extra: Any) -> dict[str, Any]:
    return {"id": vid, "schema_version": 1, "name": name, "description": "", "enabled": True,
            "server_names": names, "entry_points": ["http"],
            "tls": {"mode": "off", "certificate": None, "redirect_http": False, "hsts": None,
                    "http2": True},
            "locations": [_location(upstream)], "request_headers": {}, "response_headers": {},
            "client_max_body_size": None, "proxy_connect_timeout": None,
            "proxy_read_timeout": None, "proxy_send_timeout": None, "websocket": False,
            "access_list": None, **extra}  # fmt: skip


VHOSTS = [
    _vhost(SHOP, "shop", ["shop.example.test", "www.shop.example.test"], "app"),
    _vhost(BLOG, "blog", ["blog.example.test"], "app", enabled=False),
    _vhost(API, "api", ["api.example.test"], "apipool", entry_points=["http", "https"],
           tls={"mode": "manual", "certificate": "crt-api", "redirect_http": True, "hsts": None,
                "http2": True}),
]  # fmt: skip


def _server(address: str, **extra: Any) -> dict[str, Any]:
    return {"address": address, "weight": 1, "max_fails": 1, "fail_timeout": 10.0,
            "backup": False, "down": False, **extra}  # fmt: skip


UPSTREAMS = [
    {"id": "app", "schema_version": 1, "name": "app", "description": "shop and blog",
     "method": "round_robin", "hash_key": None, "consistent": False,
     "servers": [_server("10.0.1.10:8080"), _server("10.0.1.11:8080", weight=2)],
     "keepalive": 0, "keepalive_timeout": None,
     "next_upstream": {"on": ["error", "timeout"], "tries": 0, "timeout": 0.0}},
    {"id": "apipool", "schema_version": 1, "name": "apipool", "description": "",
     "method": "least_conn", "hash_key": None, "consistent": False,
     "servers": [_server("10.0.2.10:9000"), _server("10.0.2.11:9000"),
                 _server("10.0.2.12:9000", backup=True)],
     "keepalive": 32, "keepalive_timeout": None,
     "next_upstream": {"on": ["error", "timeout"], "tries": 0, "timeout": 0.0}},
]  # fmt: skip


def _cert(cid: str, name: str, names: list[str], source: str, not_before: str | None,
          not_after: str | None) -> dict[str, Any]:  # fmt: skip
    return {"id": cid, "schema_version": 1, "name": name, "names": names, "source": source,
            "key_ref": None, "fingerprint": "sha256:" + cid * 4 if not_after else None,
            "not_before": not_before, "not_after": not_after}  # fmt: skip


CERTIFICATES = [
    _cert("crt-shop", "shop", ["shop.example.test", "www.shop.example.test"], "acme",
          "2026-12-16T08:00:00Z", "2027-03-16T08:00:00Z"),
    _cert("crt-api", "api", ["api.example.test"], "manual",
          "2026-01-25T00:00:00Z", "2027-01-25T00:00:00Z"),
    _cert("crt-old", "legacy", ["old.example.test"], "manual",
          "2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    _cert("crt-new", "blog", ["blog.example.test"], "acme", None, None),
]  # fmt: skip

EVENTS: list[dict[str, Any]] = [
    {"type": "member", "event": "joined", "node": "n3", "key": "a95a8b8dbefe", "state": "alive",
     "address": "10.0.0.3:7946", "metadata": _meta(revision="77aa88bb99cc"), "seq": 1,
     "at": NOW - 300},
    {"type": "change", "origin": "local", "node": "n1", "document": f"workspace:{WS}",
     "workspace": WS, "resource": "vhosts", "id": API, "op": "created",
     "fields": ["name", "server_names"], "seq": 2, "at": NOW - 200,
     "changed_by": {"node": "n1", "user": "alice", "role": "operator"}},
    {"type": "apply", "node": "n1", "state": "quarantined", "summary": "quarantined 1",
     "revision": "9f3c1a2b7d4e5f60", "nginx_message": "",
     "quarantined": [{"unit": QUARANTINED_UNIT, "reason": "certificate 'api' is not installed"}],
     "seq": 3, "at": NOW - 190},
    {"type": "member", "event": "updated", "node": "n2", "key": "338c2cab663a", "state": "alive",
     "address": "10.0.0.2:7946", "metadata": _meta(revision="0d1e2f3a4b5c"), "seq": 4,
     "at": NOW - 180},
    {"type": "member", "event": "suspect", "node": "n4", "key": "1af9ab9d1e04",
     "state": "suspect", "address": "10.0.0.4:7946",
     "metadata": _meta(revision="3c3c3c3c3c3c", state="e596355383b5"), "seq": 5,
     "at": NOW - 60},
    {"type": "member", "op": "revoked", "node": "n5", "seq": 6, "at": NOW - 30},
]  # fmt: skip
"""What the fake watch stream sends after ``hello``."""

EVENT_LINES = 6
"""The lines the events screen shows for them: the connection, then one per event but
n2's metadata update (the console had not seen a different revision before)."""

INVITE = {"token": "nxm1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj.fake", "uses": 1,
          "expires_at": NOW + 3600}  # fmt: skip

VHOST_REFUSED = {
    "type": "urn:nxmesh:problem:validation", "title": "Invalid input", "status": 422,
    "detail": "the request body is invalid: server_names[0]",
    "errors": [{"field": "server_names[0]",
                "reason": "host name must not contain spaces or control characters"}],
}  # fmt: skip

NGINX_CONF = """\
# Rendered by NxMesh. Do not edit: the node rewrites it.
worker_processes auto;
worker_shutdown_timeout 30s;

events {
    worker_connections 1024;
}

http {
    include mime.types;
    server_names_hash_bucket_size 128;
    include http.d/*.conf;
    include http.d/*/upstreams.conf;
    include http.d/*/vhosts/*.conf;
}
"""

SHOP_CONF = """\
server {
    listen 10.0.0.1:80;
    server_name shop.example.test www.shop.example.test;
    location / {
        proxy_pass http://default__app;
        proxy_set_header Host $host;
    }
}
"""


UPSTREAMS_CONF = """\
upstream default__app {
    server 10.0.1.10:8080;
    server 10.0.1.11:8080 weight=2;
}
"""


def _files(contents: dict[str, str], redacted: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"path": path, "size": len(text), "sha256": f"{len(text):064x}",
             "redacted": path in redacted} for path, text in contents.items()]  # fmt: skip


N1_FILES = {
    "nginx.conf": NGINX_CONF,
    f"http.d/{WS}/upstreams.conf": UPSTREAMS_CONF,
    f"http.d/{WS}/vhosts/{SHOP}.conf": SHOP_CONF,
}
N2_NGINX_CONF = NGINX_CONF.replace(
    "    include http.d/*/vhosts/*.conf;\n",
    "    # (hidden: names a workspace the asking node does not serve)\n"
    "    include http.d/*/vhosts/*.conf;\n",
)
N2_FILES = {"nginx.conf": N2_NGINX_CONF, f"http.d/{WS}/vhosts/{SHOP}.conf": SHOP_CONF}

NGINX_MESSAGE = (
    'nginx: [emerg] cannot load certificate "/run/nxmesh/n1/crt-api.crt": BIO_new_file() failed\n'
    "nginx: configuration file /var/lib/nxmesh/nginx/conf.staging-000042/nginx.conf test failed"
)


def _metrics(**over: Any) -> dict[str, Any]:
    return {"reloads_ok": 12, "reloads_failed": 1, "reloads_rolled_back": 0,
            "apply_failures": 1, "applies": 13, "last_apply_duration_s": 0.412,
            "revision_age_s": 190.0, "nginx_up": True, "mesh_datagrams_in": 48211,
            "mesh_datagrams_out": 48190, "mesh_drops": 3, "local_edits": 4,
            "remote_updates": 9, "documents": 2, "document_bytes": 183442, **over}  # fmt: skip


def report(node: str) -> dict[str, Any]:
    """``GET /v1/nodes/{node}/status`` of n1 (quarantined, asked locally) or n2 (asked
    over the mesh; something of it left out)."""
    if node == "n1":
        return {"node": "n1", "source": "local", "apply": _meta("quarantined", quarantined=1),
                "last_apply": {"state": "quarantined", "stage": "", "reason": "",
                               "nginx_message": NGINX_MESSAGE, "revision": "9f3c1a2b7d4e5f60",
                               "desired_revision": "9f3c1a2b7d4e5f60", "applied_at": NOW - 190,
                               "updated_at": NOW - 190, "duration_s": 0.412, "drift": []},
                "quarantined": [{"unit": QUARANTINED_UNIT,
                                 "reason": "certificate 'api' is not installed"}],
                "units": {}, "invalid": [], "metrics": _metrics(), "filtered": False}  # fmt: skip
    return {"node": "n2", "source": "mesh", "apply": _meta(revision="0d1e2f3a4b5c"),
            "last_apply": {"state": "ok", "stage": "", "reason": "", "nginx_message": "",
                           "revision": "0d1e2f3a4b5c6d7e", "desired_revision": "0d1e2f3a4b5c6d7e",
                           "applied_at": NOW - 180, "updated_at": NOW - 180, "duration_s": 0.208,
                           "drift": []},
            "quarantined": [], "units": {}, "invalid": [],
            "metrics": _metrics(reloads_ok=7, reloads_failed=0, apply_failures=0, applies=7,
                                mesh_datagrams_in=47002, mesh_datagrams_out=46950, mesh_drops=0),
            "filtered": True}  # fmt: skip


def _config(node: str, contents: dict[str, str], redacted: tuple[str, ...] = ()) -> dict[str, Any]:
    files = _files(contents, redacted)
    revision = report(node)["last_apply"]["revision"]
    return {"node": node, "source": "local" if node == "n1" else "mesh", "revision": revision,
            "applied_at": NOW - 190, "files": files, "total": len(files), "truncated": False,
            "filtered": bool(redacted), "file": None}  # fmt: skip


UNREACHABLE = {
    "type": "urn:nxmesh:problem:node-unreachable", "title": "Node unreachable", "status": 503,
    "detail": "node 'n4' cannot be reached: 1af9ab9d1e04 did not answer within 10 s",
}  # fmt: skip


def node_routes() -> dict[tuple[str, str], Route]:
    """Reports and configurations of n1 and n2 (each file too); n4 cannot be reached."""
    table: dict[tuple[str, str], Route] = {}
    for node, contents, redacted in (("n1", N1_FILES, ()), ("n2", N2_FILES, ("nginx.conf",))):
        base = f"/v1/nodes/{node}"
        table["GET", f"{base}/status"] = (200, report(node))
        listing = _config(node, contents, redacted)
        table["GET", f"{base}/config"] = (200, listing)
        for entry, text in zip(listing["files"], contents.values(), strict=True):
            file = {**entry, "truncated": False, "content": text}
            table["GET", f"{base}/config?path={entry['path']}"] = (200, {**listing, "file": file})
    for what in ("status", "config"):
        table["GET", f"/v1/nodes/n4/{what}"] = (503, UNREACHABLE)
    return table


WORKSPACE = {"id": WS, "schema_version": 1, "organization": WS, "name": WS, "description": ""}


def routes(role: str = "admin", refuse_writes: bool = False) -> dict[tuple[str, str], Route]:
    """Every route the console reads, plus the writes the snapshots trigger; with
    ``refuse_writes`` creating a virtual host is refused as the API refuses a viewer."""
    base = f"/v1/workspaces/{WS}"
    table: dict[tuple[str, str], Route] = {
        ("GET", "/v1/status"): (200, status(role)),
        ("GET", "/v1/nodes"): (200, {"items": MEMBERS}),
        ("GET", "/v1/workspaces"): (200, {"items": [WORKSPACE], "invalid": []}),
        ("GET", f"{base}/vhosts"): (200, {"items": VHOSTS, "invalid": []}),
        ("GET", f"{base}/upstreams"): (200, {"items": UPSTREAMS, "invalid": []}),
        ("GET", f"{base}/certificates"): (200, {"items": CERTIFICATES, "invalid": []}),
        ("POST", "/v1/invites"): (201, INVITE),
        ("POST", f"{base}/vhosts"): (422, VHOST_REFUSED),
        **node_routes(),
    }
    for resource, items in (("vhosts", VHOSTS), ("upstreams", UPSTREAMS),
                            ("certificates", CERTIFICATES)):  # fmt: skip
        for item in items:
            table["GET", f"{base}/{resource}/{item['id']}"] = (200, item)
    if role == "viewer" or refuse_writes:
        forbidden = {"type": "urn:nxmesh:problem:forbidden", "title": "Forbidden", "status": 403,
                     "detail": "changing vhosts needs the operator role", "errors": [],
                     "required_role": "operator", "role": "viewer"}  # fmt: skip
        table["POST", f"{base}/vhosts"] = (403, forbidden)
    return table
