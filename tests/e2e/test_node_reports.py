"""Another node's status and configuration through this node's API, with two real
daemons (``nxmesh run`` child processes, render-only): node 2's report read through node
1's socket equals what node 2 says and holds itself; a node that does not serve a
workspace gets nothing of it; a node that stopped is a 503."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from node.localmesh import LocalNode, until

pytestmark = pytest.mark.slow

SECRET_NAME = "vault.secret.test"


def get(node: LocalNode, url: str, **params: str) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(node.state / "api.sock"))
    with httpx.Client(transport=transport, base_url="http://nxmesh", timeout=30) as client:
        return client.get(url, params=params)


def ok(node: LocalNode, url: str, **params: str) -> Any:
    answer = get(node, url, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def converged(n1: LocalNode, n2: LocalNode, *files: str) -> None:
    """Both nodes applied ``files`` and publish the same desired state."""

    def same() -> bool:
        if not all((n.state / "nginx" / "conf" / f).exists() for n in (n1, n2) for f in files):
            return False
        states = {n.api("GET", "/v1/status")["apply"]["state"] for n in (n1, n2)}
        return len(states) == 1 and "" not in states

    until(same, "both nodes to apply the same desired state")


def add_site(node: LocalNode, ws: str, name: str, server_name: str) -> str:
    base = f"/v1/workspaces/{ws}"
    node.api(
        "PUT", f"{base}/upstreams/app", {"name": "app", "servers": [{"address": "127.0.0.1:9"}]}
    )
    created = node.api(
        "POST",
        f"{base}/vhosts",
        {"name": name, "server_names": [server_name],
         "locations": [{"path": "/", "upstream": "app"}]},
    )  # fmt: skip
    return str(created["id"])


def on_disk(node: LocalNode, path: str) -> bytes:
    """The file of the node's applied tree (empty when it has none)."""
    file = node.state / "nginx" / "conf" / path
    return file.read_bytes() if file.exists() else b""


def test_node_2_as_seen_through_node_1(pair: tuple[LocalNode, LocalNode]) -> None:
    n1, n2 = pair
    site = add_site(n1, "default", "shop", "shop.example.test")
    converged(n1, n2, f"http.d/default/vhosts/{site}.conf")
    own = n2.api("GET", "/v1/status")
    report = ok(n1, "/v1/nodes/n2/status")
    assert report["node"] == "n2"
    assert report["source"] == "mesh"
    assert report["apply"] == own["apply"]
    assert report["quarantined"] == own["quarantined"]
    assert report["units"] == own["units"]
    assert report["last_apply"]["state"] == "ok"
    assert report["last_apply"]["revision"].startswith(own["apply"]["revision"])
    assert report["last_apply"]["applied_at"] > 0
    assert not report["filtered"]
    metrics = report["metrics"]
    assert metrics["mesh_datagrams_in"] > 0
    assert metrics["mesh_datagrams_out"] > 0
    assert metrics["nginx_up"] is False  # render-only: no nginx
    # The local node answers for itself without the mesh.
    assert ok(n1, "/v1/nodes/n1/status")["source"] == "local"

    config = ok(n1, "/v1/nodes/n2/config")
    assert config["revision"] == report["last_apply"]["revision"]
    paths = [f["path"] for f in config["files"]]
    assert paths[0] == "nginx.conf"
    assert f"http.d/default/vhosts/{site}.conf" in paths
    for entry in config["files"]:
        data = on_disk(n2, entry["path"])
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert not entry["redacted"]
    for path in ("nginx.conf", f"http.d/default/vhosts/{site}.conf"):
        file = ok(n1, "/v1/nodes/n2/config", path=path)["file"]
        assert file["content"].encode() == on_disk(n2, path)
        assert not file["truncated"]
    refused = get(n1, "/v1/nodes/n2/config", path="../identity.key")
    assert refused.status_code == 422
    absent = get(n1, "/v1/nodes/n2/config", path="certs/_fallback.key")
    assert absent.status_code == 422
    assert get(n1, "/v1/nodes/nobody/status").status_code == 404


def test_a_node_not_serving_a_workspace_gets_none_of_it(
    pair: tuple[LocalNode, LocalNode],
) -> None:
    n1, n2 = pair
    # n1 serves only "default" from now on: assigned through n2's API, known to n1
    # before the other workspace exists.
    assert n2.api("PUT", "/v1/nodes/n1/workspaces", {"workspaces": ["default"]})
    until(
        lambda: n1.api("GET", "/v1/nodes/n1")["workspaces"] == ["default"],
        "n1 to learn its assignment",
    )
    workspace = n2.api("POST", "/v1/workspaces", {"name": "secret", "organization": "default"})
    ws = workspace["id"]
    secret = add_site(n2, ws, "vault", SECRET_NAME)
    visible = add_site(n2, "default", "shop", "shop.example.test")
    secret_file = f"http.d/{ws}/vhosts/{secret}.conf"
    visible_file = f"http.d/default/vhosts/{visible}.conf"
    # (The nodes serve different workspaces: their desired-state digests differ.)
    until(
        lambda: (
            all(on_disk(n, f) for n in (n1, n2) for f in (visible_file,))
            and (n2.state / "nginx" / "conf" / secret_file).exists()
        ),
        "both nodes to apply what they serve",
    )
    until(lambda: get(n1, f"/v1/workspaces/{ws}/vhosts").status_code == 404, "n1 not serving")

    report = ok(n1, "/v1/nodes/n2/status")
    assert ws not in str(report["units"]) + str(report["quarantined"]) + str(report["last_apply"])
    config = ok(n1, "/v1/nodes/n2/config")
    assert config["filtered"]
    paths = [f["path"] for f in config["files"]]
    assert f"http.d/default/vhosts/{visible}.conf" in paths
    assert not [p for p in paths if ws in p]
    for entry in config["files"]:
        content = ok(n1, "/v1/nodes/n2/config", path=entry["path"])["file"]["content"]
        assert SECRET_NAME not in content, entry["path"]
        assert ws not in content, entry["path"]
        if not entry["redacted"]:
            assert content.encode() == on_disk(n2, entry["path"])
    assert "nginx.conf" in {f["path"] for f in config["files"] if f["redacted"]}
    hidden = get(n1, "/v1/nodes/n2/config", path=secret_file)
    assert hidden.status_code == 422
    # n2 itself, through its own API, shows everything.
    own = ok(n2, "/v1/nodes/n2/config", path=secret_file)["file"]
    assert SECRET_NAME in own["content"]


def test_a_stopped_node_is_a_503(pair: tuple[LocalNode, LocalNode]) -> None:
    n1, n2 = pair
    n2.kill9()  # n1 still believes it alive for a moment: nothing listens any more
    answer = get(n1, "/v1/nodes/n2/status")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert "n2" in answer.json()["detail"]
    assert answer.json()["type"] == "urn:nxmesh:problem:node-unreachable"
    n2.start()
    until(lambda: n1.alive_members() == 2, "n2 back")
    assert get(n1, "/v1/nodes/n2/config").status_code == 200
    n2.stop()  # a graceful leave: known to have left at once
    until(
        lambda: (
            {m["name"]: m["state"] for m in n1.api("GET", "/v1/nodes")["items"]}["n2"] == "left"
        ),
        "n1 to see n2 leave",
    )
    answer = get(n1, "/v1/nodes/n2/config")
    assert answer.status_code == 503
    assert "left" in answer.json()["detail"]
