"""What a node writes to disk for nginx: challenge files, installed certificates and keys
(modes, atomic writes, checks, stale files kept until nginx stops using them), where the
keys live (tmpfs), and the metadata that reports challenge tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crdt.schema import Certificate
from node.acme.challenges import (
    MAX_REPORTED,
    ChallengeDir,
    ProviderError,
    make_provider,
    token_hash,
)
from node.acme.install import STALE_GRACE, Installer
from node.acme.keys import parse_chain
from node.certs import ensure_fallback, is_tmpfs, runtime_certs_dir
from node.meta import NodeMeta
from tests.render.pki import TestCA


def _token(i: int) -> tuple[str, str]:
    token = f"tok{i:04d}" + "x" * 30
    return token, f"{token}.{'t' * 43}"


def test_challenge_files_mirror_the_records(tmp_path: Path) -> None:
    d = ChallengeDir(tmp_path / "acme")
    d.prepare()
    (tmp_path / "acme" / "leftover").write_text("old run")
    d.prepare()
    assert list((tmp_path / "acme").iterdir()) == []
    one, two = _token(1), _token(2)
    assert d.sync(dict([one, two]))
    assert (tmp_path / "acme" / one[0]).read_text() == one[1]
    assert stat.S_IMODE(os.stat(tmp_path / "acme" / one[0]).st_mode) == 0o644
    assert not d.sync(dict([one, two]))  # nothing to do
    assert d.reported() == (token_hash(two[0]), token_hash(one[0]))  # newest first
    assert d.sync(dict([two]))
    assert sorted(p.name for p in (tmp_path / "acme").iterdir()) == [two[0]]
    # Hostile records never become paths outside the directory.
    assert not d.sync({**dict([two]), "../../escape": "x.y", "a" * 20: "../" * 10})
    assert set(d.errors) == {"../../escape", "a" * 20}
    assert not (tmp_path / "escape").exists()


def test_only_the_newest_tokens_are_reported(tmp_path: Path) -> None:
    d = ChallengeDir(tmp_path / "acme")
    d.prepare()
    tokens = dict(_token(i) for i in range(MAX_REPORTED + 5))
    d.sync(tokens)
    assert len(d.reported()) == MAX_REPORTED


def test_metadata_carries_the_tokens_and_old_peers_still_read_it() -> None:
    hashes = tuple(token_hash(_token(i)[0]) for i in range(MAX_REPORTED))
    meta = NodeMeta("n1", "1.0", labels={"zone": "a" * 40}, acme=hashes)
    back = NodeMeta.unpack(meta.pack())
    assert back is not None
    assert back.acme == hashes
    assert back.labels == {"zone": "a" * 40}
    # A node of an older version (no ACME field) reads as not taking part in ACME.
    old = NodeMeta("n2", "0.9")
    unpacked = NodeMeta.unpack(old.pack())
    assert unpacked is not None
    assert unpacked.acme is None


def _entity(ca: TestCA, ident: str, names: list[str]) -> tuple[Certificate, bytes]:
    crt, key = ca.issue(names)
    info = parse_chain(crt + ca.pem)
    return (
        Certificate(
            id=ident,
            name=ident,
            names=tuple(names),
            not_before=info.not_before,
            not_after=info.not_after,
            key_ref=f"k-{ident}",
            fingerprint=info.fingerprint,
            chain_pem=info.chain_pem,
        ),
        key,
    )


def test_the_installer_writes_checked_pairs_and_keeps_stale_ones_while_used(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    source = tmp_path / "state" / "certs"
    ensure_fallback(source, "n1")
    installer = Installer(tmp_path / "run" / "n1-x" / "certs", source, group=None,
                          clock=lambda: now[0])  # fmt: skip
    installer.prepare()
    assert (installer.directory / "_fallback.key").exists()
    assert installer.ids() == frozenset()
    ca = TestCA.create()
    good, good_key = _entity(ca, "good", ["a.test"])
    bad, _ = _entity(ca, "bad", ["b.test"])
    keys = {"k-good": good_key, "k-bad": ca.issue(["b.test"])[1]}  # not bad's key
    assert installer.sync({"good": good, "bad": bad}, lambda c: keys[c.key_ref or ""])
    assert installer.ids() == {"good"}
    assert "does not belong" in installer.errors["bad"]
    assert not (installer.directory / "bad.crt").exists()
    key_file = installer.directory / "good.key"
    assert key_file.read_bytes() == good_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600  # not root: the workers are us
    assert (installer.directory / "good.crt").read_text() == good.chain_pem
    assert not list(installer.directory.glob(".*.tmp"))
    # Unchanged: nothing written again.
    assert not installer.sync({"good": good}, lambda c: keys[c.key_ref or ""])
    # Gone from the documents: kept while the served revision uses it, then a grace.
    installer.sync({}, lambda c: b"")
    assert not installer.collect(frozenset({"good"}))
    now[0] += STALE_GRACE + 1
    assert not installer.collect(frozenset({"good"}))
    assert not installer.collect(None)
    assert installer.collect(frozenset())
    assert not key_file.exists()
    assert installer.ids() == frozenset()
    installer.remove_all()
    assert not installer.directory.exists()
    assert (source / "_fallback.key").exists()  # the state's own files are never removed


def test_hand_placed_pairs_are_installed_as_they_are(tmp_path: Path) -> None:
    source = tmp_path / "certs"
    ensure_fallback(source, "n1")
    ca = TestCA.create()
    ca.install(source, "legacy", ["legacy.test"])
    installer = Installer(tmp_path / "run" / "t" / "certs", source, group=None)
    installer.prepare()
    assert installer.ids() == {"legacy"}
    assert (installer.directory / "legacy.key").read_bytes() == (source / "legacy.key").read_bytes()


@pytest.mark.skipif(os.geteuid() != 0, reason="group ownership needs root")
def test_as_root_keys_are_readable_by_the_workers_group_only(tmp_path: Path) -> None:
    source = tmp_path / "certs"
    ensure_fallback(source, "n1")
    installer = Installer(tmp_path / "run" / "n1-x" / "certs", source, group=33)
    installer.prepare()
    ca = TestCA.create()
    c, key = _entity(ca, "c", ["a.test"])
    installer.sync({"c": c}, lambda _: key)
    info = os.stat(installer.directory / "c.key")
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 33)
    for directory, mode in ((installer.directory, 0o750), (installer.directory.parent, 0o710)):
        info = os.stat(directory)
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, 33)


def test_keys_go_to_a_tmpfs_per_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NXMESH_RUNTIME_DIR", raising=False)
    a = runtime_certs_dir(tmp_path / "a", "n1")
    b = runtime_certs_dir(tmp_path / "b", "n1")
    assert a != b
    assert a == runtime_certs_dir(tmp_path / "a", "n1")  # a restart finds its own
    if is_tmpfs(Path("/dev/shm")) or is_tmpfs(Path("/run")):
        assert is_tmpfs(a.parent.parent.parent)
    monkeypatch.setenv("NXMESH_RUNTIME_DIR", str(tmp_path / "rt"))
    assert runtime_certs_dir(tmp_path / "a", "n1").is_relative_to(tmp_path / "rt")


def test_dns_providers_are_named() -> None:
    assert make_provider("challtestsrv:http://127.0.0.1:8055").propagation == 0.0
    with pytest.raises(ProviderError, match="unknown DNS-01 provider 'route53'"):
        make_provider("route53:zone")
    with pytest.raises(ProviderError, match="management URL"):
        make_provider("challtestsrv")
