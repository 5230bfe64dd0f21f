"""node.report on a real rendered tree on disk: what an asker that does not serve a
workspace gets - none of its files, no line naming it in the shared files or messages -
and what it never gets at all (anything outside the tree, through a link)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from node.api.services import NoSuchFile
from node.nginx import ApplierStatus, Quarantined
from node.nginx.stage import Manifest, TreeStore
from node.report import (
    HIDDEN_LINE,
    MAX_FILE_BYTES,
    BadReport,
    Request,
    View,
    config_report,
    status_report,
    tree_tokens,
    unpack_answer,
)
from render import render
from tests.render.scenario import SETTINGS, certificate, make_view, vhost, workspace

PUB, PRIV = "pub", "priv"
# Everything of the private workspace that must never reach an asker that does not serve it.
SECRETS = ("secret.", "hidden.", "gate.", "privcert", "priv/", "4242", "4343")
PRIV_NAMES = ["secret.example.test", "hidden.example.test", "gate.example.test"]


def _tls(cert: str, max_age: int, redirect: bool) -> dict[str, object]:
    tls = {"mode": "manual", "certificate": cert, "redirect_http": redirect,
           "hsts": {"max_age": max_age}}  # fmt: skip
    return {"tls": tls, "entry_points": ["http", "https"]}


def applied_tree(prefix: Path) -> tuple[Path, Manifest]:
    """Two workspaces rendered and committed as the applier does, with TLS (the names go
    into the shared TLS map), HTTP redirects (shared redirect servers) and HSTS on plain
    and TLS listens (shared maps in nginx.conf)."""
    states = {
        PUB: workspace(
            vhost("shop", ["shop.example.test"], **_tls("pubcert", 600, False)),
            certificate("pubcert", ["shop.example.test"]),
        ),
        PRIV: workspace(
            vhost("vault", PRIV_NAMES[:2], **_tls("privcert", 4242, True)),
            vhost("gate", PRIV_NAMES[2:], **_tls("privcert", 4343, False)),
            certificate("privcert", PRIV_NAMES),
        ),
    }
    view = make_view(prefix, installed_certificates=frozenset({"pubcert", "privcert"}))
    rendered = render(SETTINGS, states, view)
    store = TreeStore(prefix)
    store.prepare()
    staged = store.stage(rendered.files)
    manifest = Manifest(rendered.revision, rendered.revision, staged.hashes)
    tree = store.commit(staged, manifest)
    store.swap(tree)
    return tree, manifest


def private_view(tree: Path, manifest: Manifest) -> View:
    hidden = frozenset({PRIV})
    return View(hidden, tree_tokens(tree, manifest, hidden))


def test_everything_is_shown_to_an_asker_serving_every_workspace(tmp_path: Path) -> None:
    tree, manifest = applied_tree(tmp_path)
    report = config_report(tree, manifest, View(), None)
    assert [f["path"] for f in report["files"]] == sorted(
        manifest.files, key=lambda p: (p != "nginx.conf", p)
    )
    assert report["total"] == len(manifest.files)
    assert not report["filtered"]
    assert not report["truncated"]
    for entry in report["files"]:
        data = (tree / entry["path"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    one = config_report(tree, manifest, View(), "http.d/priv/vhosts/vault.conf")["file"]
    assert one["content"] == (tree / "http.d/priv/vhosts/vault.conf").read_text()
    assert not one["redacted"]
    assert not one["truncated"]


def test_an_asker_not_serving_a_workspace_gets_nothing_of_it(tmp_path: Path) -> None:
    tree, manifest = applied_tree(tmp_path)
    view = private_view(tree, manifest)
    report = config_report(tree, manifest, view, None)
    paths = [f["path"] for f in report["files"]]
    assert "http.d/pub/vhosts/shop.conf" in paths
    assert not [p for p in paths if "priv" in p]
    assert report["filtered"]
    redacted = {f["path"] for f in report["files"] if f["redacted"]}
    assert {"nginx.conf", "http.d/_tls.conf", "http.d/_redirect.conf"} <= redacted
    for entry in report["files"]:
        file = config_report(tree, manifest, view, entry["path"])["file"]
        content = file["content"]
        for secret in SECRETS:
            assert secret not in content, (entry["path"], secret)
        assert file["size"] == entry["size"] == len(content.encode())
        assert file["sha256"] == entry["sha256"] == hashlib.sha256(content.encode()).hexdigest()
        if not entry["redacted"]:
            assert content == (tree / entry["path"]).read_text()
    # What the asker may see stays: its own names, includes and HSTS map.
    tls = config_report(tree, manifest, view, "http.d/_tls.conf")["file"]["content"]
    assert "shop.example.test pubcert;" in tls
    assert HIDDEN_LINE in tls
    main = config_report(tree, manifest, view, "nginx.conf")["file"]["content"]
    assert "http.d/pub/vhosts/shop.conf" in main
    assert "max-age=600" in main
    assert main.count("{") == main.count("}")  # whole blocks hidden, not half of one
    with pytest.raises(NoSuchFile):
        config_report(tree, manifest, view, "http.d/priv/vhosts/vault.conf")


def test_a_shared_file_too_large_to_check_whole_is_not_shown(tmp_path: Path) -> None:
    tree, manifest = applied_tree(tmp_path)
    main = tree / "nginx.conf"
    main.write_bytes(main.read_bytes() + b"#" * (4 * MAX_FILE_BYTES))
    report = config_report(tree, manifest, private_view(tree, manifest), None)
    assert "nginx.conf" not in [f["path"] for f in report["files"]]
    everything = config_report(tree, manifest, View(), None)
    assert "nginx.conf" in [f["path"] for f in everything["files"]]


def test_no_path_outside_the_manifest_or_through_a_link_is_read(tmp_path: Path) -> None:
    tree, manifest = applied_tree(tmp_path / "nginx")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "privcert.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    for path in ("../certs/privcert.key", "conf.json", "nope.conf"):
        with pytest.raises(NoSuchFile):
            config_report(tree, manifest, View(), path, forbidden=[certs])
    # A file of the tree replaced by a link to a key (by hand, say): refused.
    shop = tree / "http.d/pub/vhosts/shop.conf"
    shop.unlink()
    os.symlink(certs / "privcert.key", shop)
    with pytest.raises(NoSuchFile, match="cannot be read"):
        config_report(tree, manifest, View(), "http.d/pub/vhosts/shop.conf", forbidden=[certs])
    # A directory of the tree replaced by a link into the certificates directory: refused.
    (certs / "vhosts").mkdir()
    (certs / "vhosts" / "shop.conf").write_text("key material")
    pub = tree / "http.d/pub"
    (pub / "vhosts" / "shop.conf").unlink()
    (pub / "vhosts").rmdir()
    os.symlink(certs / "vhosts", pub / "vhosts")
    with pytest.raises(NoSuchFile, match="outside the applied tree"):
        config_report(tree, manifest, View(), "http.d/pub/vhosts/shop.conf", forbidden=[certs])


def test_nothing_applied_yet() -> None:
    report = config_report(None, None, View(), None)
    assert report["files"] == []
    assert report["revision"] is None
    with pytest.raises(NoSuchFile):
        config_report(None, None, View(), "nginx.conf")


def test_status_leaves_out_and_hides_what_names_a_hidden_workspace() -> None:
    status = ApplierStatus(
        state="failed",
        stage="test",
        reason="nginx -t failed",
        nginx_message=(
            'nginx: [emerg] unknown directive "x" in /p/conf.7/http.d/priv/vhosts/v.conf:3\n'
            "nginx: configuration file /p/conf.staging-7/nginx.conf test failed"
        ),
        quarantined=(Quarantined("priv/vhost/v", "bad"), Quarantined("pub/vhost/s", "worse")),
        drift=("http.d/priv/vhosts/v.conf", "nginx.conf"),
    )
    units = {
        "priv/vhost/w": {"state": "degraded", "reason": "no certificate"},
        "pub/vhost/t": {"state": "degraded",
                        "reason": "server name a.test is already served by priv/vhost/w"},
    }  # fmt: skip
    invalid = ["workspace:priv: vhost x: bad", "workspace:pub: vhost y: bad", "mesh: settings: z"]
    view = View(frozenset({PRIV}), frozenset({"secret.example.test"}))
    published = {"apply": "failed", "quarantined": 2, "reason": "r",
                 "workspaces": {PRIV: "0badc0de", "pub": "600dc0de"}}  # fmt: skip
    report = status_report(status, published, units, invalid, {}, view)
    assert report["apply"]["workspaces"] == {"pub": "600dc0de"}
    assert report["quarantined"] == [{"unit": "pub/vhost/s", "reason": "worse"}]
    assert report["apply"]["quarantined"] == 2  # published: every member sees it anyway
    assert list(report["units"]) == ["pub/vhost/t"]
    assert report["units"]["pub/vhost/t"]["reason"] == HIDDEN_LINE
    assert report["invalid"] == ["workspace:pub: vhost y: bad", "mesh: settings: z"]
    assert report["last_apply"]["drift"] == ["nginx.conf"]
    message = report["last_apply"]["nginx_message"]
    assert "priv" not in message
    assert message.splitlines() == [HIDDEN_LINE, status.nginx_message.splitlines()[1]]
    assert report["filtered"]
    everything = status_report(status, {"apply": "failed"}, units, invalid, {}, View())
    assert everything["last_apply"]["nginx_message"] == status.nginx_message
    assert len(everything["quarantined"]) == 2
    assert not everything["filtered"]
    # A view hiding a workspace that names nothing here leaves everything as it is.
    unrelated = View(frozenset({"other"}))
    assert not status_report(status, {}, units, invalid, {}, unrelated)["filtered"]


def test_requests_and_answers_are_checked() -> None:
    assert Request.unpack(Request("config", "nginx.conf").pack()) == Request("config", "nginx.conf")
    assert Request.unpack(Request("status").pack()) == Request("status")
    for bad in (b"", b"\xc1", b"\x90", Request("config", "../x").pack(),
                Request("status", "nginx.conf").pack(), b"\x81\xa1q\xa4exec"):  # fmt: skip
        with pytest.raises(BadReport):
            Request.unpack(bad)
    with pytest.raises(BadReport):
        unpack_answer(b"\x82\xa5error\xabbad-request\xa6detail\xa1x")
