"""Trees on disk, drift comparison, nginx message parsing, /proc helpers (no nginx)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from node.nginx import procs
from node.nginx.drift import compare, scan
from node.nginx.errorlog import LogTail, parse_line, summarize
from node.nginx.server import is_nginx_master
from node.nginx.stage import Manifest, TreeStore, check_relative_path

FILES = {"nginx.conf": b"events {}\n", "units/a.conf": b"# a\n", "x/y/z.conf": b""}


def store(tmp_path: Path, keep: int = 3) -> TreeStore:
    s = TreeStore(tmp_path / "prefix", keep=keep)
    s.prepare()
    return s


def commit(s: TreeStore, files: dict[str, bytes], revision: str) -> Path:
    staged = s.stage(files)
    return s.commit(staged, Manifest(revision, revision, staged.hashes))


def test_stage_commit_swap_and_manifest(tmp_path: Path) -> None:
    s = store(tmp_path)
    staged = s.stage(FILES)
    assert staged.path.name == "conf.staging-000001"
    assert {p: (staged.path / p).read_bytes() for p in FILES} == FILES
    assert oct((staged.path / "units/a.conf").stat().st_mode & 0o777) == "0o644"

    tree = s.commit(staged, Manifest("ab" * 32, "cd" * 32, staged.hashes, (("u", "why"),)))
    s.swap(tree)

    assert tree.name == "conf.000001-abababababab"
    assert os.readlink(s.link) == tree.name, "a relative link: the prefix can move"
    assert s.current() == tree
    manifest = s.manifest(tree)
    assert manifest is not None
    assert (manifest.revision, manifest.quarantined) == ("ab" * 32, (("u", "why"),))
    assert scan(s, tree, manifest.files).clean


def test_unsafe_paths_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    s = store(tmp_path)
    for bad in ("../escape.conf", "/etc/passwd", "a/./b", "a//b", "", "a/\0"):
        with pytest.raises(ValueError, match="unsafe path"):
            check_relative_path(bad)
    with pytest.raises(ValueError, match="unsafe path"):
        s.stage({"nginx.conf": b"", "units/../../x": b""})
    with pytest.raises(ValueError, match=r"no nginx\.conf"):
        s.stage({"units/a.conf": b""})
    assert not list(s.prefix.glob("conf.staging-*"))
    assert not (tmp_path / "x").exists()


def test_prepare_adopts_a_plain_conf_dir_and_clears_staging_leftovers(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "conf").mkdir(parents=True)
    (prefix / "conf" / "nginx.conf").write_text("# by hand\n")
    (prefix / "conf.staging-000007").mkdir()
    (prefix / "conf.000005-abc").mkdir()
    s = TreeStore(prefix)
    s.prepare()
    assert not (prefix / "conf").exists()
    [aside] = prefix.glob("conf.orig-*")
    assert (aside / "nginx.conf").read_text() == "# by hand\n"
    assert not (prefix / "conf.staging-000007").exists()
    assert s.stage(FILES).path.name == "conf.staging-000008", "sequence numbers never reused"
    assert (prefix / "logs").is_dir()
    assert (prefix / "temp").is_dir()


def test_unchanged_files_are_linked_from_the_serving_tree(tmp_path: Path) -> None:
    s = store(tmp_path)
    base = commit(s, FILES, "a" * 12)
    files = {**FILES, "units/a.conf": b"# a, changed\n", "units/new.conf": b"# new\n"}
    staged = s.stage(files, base)

    assert sorted(staged.written or ()) == ["units/a.conf", "units/new.conf"]
    assert staged.directories == ("", "units", "x", "x/y")
    for rel in ("nginx.conf", "x/y/z.conf"):
        assert (staged.path / rel).stat().st_ino == (base / rel).stat().st_ino
    assert (staged.path / "units/a.conf").stat().st_ino != (base / "units/a.conf").stat().st_ino
    assert {p: (staged.path / p).read_bytes() for p in files} == files
    tree = s.commit(staged, Manifest("b" * 12, "b" * 12, staged.hashes))
    s.swap(tree)
    assert scan(s, tree, staged.hashes).clean
    assert (base / "units/a.conf").read_bytes() == b"# a\n", "the base tree is untouched"


def test_a_hand_edited_or_redirected_base_file_is_written_anew(tmp_path: Path) -> None:
    s = store(tmp_path)
    base = commit(s, FILES, "a" * 12)
    (base / "nginx.conf").write_bytes(b"events { } # by hand\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.conf").write_bytes(FILES["units/a.conf"])
    (base / "units/a.conf").unlink()
    (base / "units").rmdir()
    (base / "units").symlink_to(outside)  # same bytes, but not the tree's own file

    staged = s.stage(FILES, base)

    assert sorted(staged.written or ()) == ["nginx.conf", "units/a.conf"]
    assert (staged.path / "nginx.conf").read_bytes() == FILES["nginx.conf"]
    assert (staged.path / "units/a.conf").stat().st_ino != (outside / "a.conf").stat().st_ino
    with pytest.raises(ValueError, match="not a committed tree"):
        s.stage(FILES, outside)


def test_only_our_own_regular_files_are_linked(tmp_path: Path) -> None:
    s = store(tmp_path)
    files = {**FILES, "a.conf": b"a\n", "b.conf": b"b\n", "c.conf": b""}
    base = commit(s, files, "a" * 12)
    (base / "a.conf").chmod(0o600)  # chmod-ed by hand: the mode would carry over
    (base / "b.conf").unlink()
    os.mkfifo(base / "b.conf")  # opening it for reading must not wait for a writer
    (base / "c.conf").unlink()
    (base / "c.conf").mkdir()  # an empty file and a directory may share a size

    staged = s.stage(files, base)

    assert sorted(staged.written or ()) == ["a.conf", "b.conf", "c.conf"]
    for rel in ("a.conf", "b.conf", "c.conf"):
        st = (staged.path / rel).stat()
        assert (oct(st.st_mode & 0o777), (staged.path / rel).read_bytes()) == ("0o644", files[rel])
    assert staged.flushes == 3 + 4  # three files; the tree, units/, x/ and x/y/


def test_prune_keeps_the_newest_and_the_protected(tmp_path: Path) -> None:
    s = store(tmp_path, keep=2)
    trees = [commit(s, FILES, f"{i:02x}" * 32) for i in range(5)]
    removed = s.prune(protect=[trees[0]])
    assert set(removed) == {trees[1], trees[2]}
    assert s.trees() == [trees[4], trees[3], trees[0]]
    assert not Path(f"{trees[1]}.json").exists()


def test_swap_refuses_anything_but_a_committed_tree(tmp_path: Path) -> None:
    s = store(tmp_path)
    with pytest.raises(ValueError, match="not a committed tree"):
        s.swap(tmp_path / "elsewhere")


def test_drift_finds_changed_missing_added_and_a_repointed_link(tmp_path: Path) -> None:
    s = store(tmp_path)
    tree = commit(s, FILES, "aa" * 32)
    other = commit(s, FILES, "bb" * 32)
    s.swap(tree)
    manifest = s.manifest(tree)
    assert manifest is not None
    (tree / "units/a.conf").write_bytes(b"# edited\n")
    (tree / "x/y/z.conf").unlink()
    (tree / "units/new.conf").write_bytes(b"")
    (tree / "units/link.conf").symlink_to("/etc/hostname")
    s.swap(other)

    report = scan(s, tree, manifest.files)

    assert report.changed == ("units/a.conf",)
    assert report.missing == ("x/y/z.conf",)
    assert report.added == ("units/link.conf", "units/new.conf")
    assert report.link == f"conf points at {other.name}, not {tree.name}"
    assert report.paths()[-1] == "conf"
    assert compare({"a": "1"}, {"a": "1"}).clean


def test_nginx_messages_parse_in_both_shapes() -> None:
    line = parse_line("2026/11/29 17:33:40 [emerg] 28333#28333: bind() failed (98: in use)")
    assert line is not None
    assert (line.level, line.pid, line.text) == ("emerg", 28333, "bind() failed (98: in use)")
    line = parse_line('nginx: [emerg] unknown directive "x" in /p/conf.staging-000003/u.conf:1')
    assert line is not None
    assert (line.level, line.pid) == ("emerg", None)
    assert parse_line("nginx: configuration file /x test failed") is None
    text = (
        'nginx: [warn] conflicting server name "a"\n'
        'nginx: [emerg] unknown directive "x" in /p/conf.staging-000003/units/u.conf:1\n'
        'nginx: [emerg] unknown directive "x" in /p/conf.staging-000003/units/u.conf:1\n'
        "nginx: configuration file /p/conf.staging-000003/nginx.conf test failed\n"
    )
    assert summarize(text, strip="/p/conf.staging-000003") == (
        'unknown directive "x" in units/u.conf:1'
    )


def test_log_tail_reads_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text("2026/01/01 00:00:00 [emerg] 1#1: old\n")
    tail = LogTail(log)
    assert tail.read() == []
    with log.open("a") as f:
        f.write("2026/01/01 00:00:01 [alert] 2#2: new\n2026/01/01 00:00:02 [emerg] 3#3: hal")
    assert [ln.text for ln in tail.read()] == ["new"]
    with log.open("a") as f:
        f.write("f\n")
    assert [ln.text for ln in tail.read()] == ["half"]
    log.write_text("2026/01/01 00:00:03 [emerg] 4#4: rotated\n")  # truncated and rewritten
    assert [ln.text for ln in tail.read()] == ["rotated"]
    assert LogTail(tmp_path / "absent.log").read() == []


def test_procs_children_groups_and_owners() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        me = os.getpid()
        assert child.pid in procs.children(me)
        assert procs.group_members(child.pid) == {child.pid}
        assert procs.owner(child.pid) == (os.geteuid(), os.getegid())
        assert procs.cmdline(child.pid) == "sleep 30"
        child.kill()
        child.wait()
        assert not procs.alive(child.pid)
        assert child.pid not in procs.children(me)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_pid_files(tmp_path: Path) -> None:
    path = tmp_path / "nginx.pid"
    assert procs.read_pid_file(path) is None
    path.write_text("")
    assert procs.read_pid_file(path) is None
    path.write_text("1234\n")
    assert procs.read_pid_file(path) == 1234


def test_nginx_masters_are_recognised_before_and_after_naming_themselves() -> None:
    assert is_nginx_master("nginx: master process /usr/sbin/nginx -p /x")
    assert is_nginx_master("/usr/sbin/nginx -p /x -c conf/nginx.conf")  # not yet renamed
    assert not is_nginx_master("nginx: worker process")
    assert not is_nginx_master("sleep 30")
    assert not is_nginx_master("")
