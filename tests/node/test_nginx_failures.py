"""Every kind of failure ends in a clear failed state, and the last good tree serves."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from node.nginx import Applier, Metrics, Supervisor, procs, stage
from render.model import Rendered
from tests.node.conftest import managed
from tests.node.trees import Fleet, listing, live_tree, read_tree, serves, settings, stays

A = "ws/vhost/a"


@pytest.mark.nginx
async def test_disk_full_while_staging_keeps_the_last_good_tree(
    prefix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet.of(A, "ws/vhost/b")
    async with managed(fleet, prefix) as m:
        good = await m.wait(lambda s: s.state == "ok")
        good_tree = live_tree(prefix)
        written: list[Path] = []
        real_write = stage._write_file

        def fill_up(path: Path, data: bytes) -> None:
            if written:  # the second file finds the disk full
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            written.append(path)
            real_write(path, data)

        monkeypatch.setattr(stage, "_write_file", fill_up)
        fleet.rev = 2

        result = await m.applier.apply_now()

        assert (result.state, result.stage) == ("failed", "stage")
        assert result.reason.startswith("staging failed: No space left on device: ")
        assert result.revision == good.revision
        assert live_tree(prefix) == good_tree
        assert listing(prefix, "conf.staging-*") == [], "the partial tree is removed"
        assert m.reloads() == 0
        await stays(fleet.units[A].port, f"{A}-1")
        assert m.metrics.value("nxmesh_nginx_apply_failures_total", stage="stage") == 1

        monkeypatch.undo()
        assert (await m.applier.apply_now()).state == "ok"
        await serves(fleet.units[A].port, f"{A}-2")


def fake_nginx(tmp: Path, script: str, mode: int = 0o755) -> Path:
    path = tmp / "nginx"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(mode)
    return path


async def test_nginx_t_timeout_is_a_clear_failure(prefix: Path, tmp_path: Path) -> None:
    marker = "31.4159"
    binary = fake_nginx(tmp_path, f"exec sleep {marker}\n")
    s = settings(prefix, binary=str(binary), test_timeout=0.3)
    applier = Applier(s, Fleet.of(A).build, server=Supervisor(s, metrics=Metrics()))

    start = trio.current_time()
    result = await applier.apply_now()

    assert trio.current_time() - start < 3
    assert (result.state, result.stage, result.reason) == ("failed", "test", "nginx -t timed out")
    assert result.nginx_message == "nginx -t did not finish within 0.3 s"
    assert result.checks == 0
    assert result.revision is None
    assert listing(prefix, "conf*") == [], "nothing untested is swapped in or left behind"
    sleepers = [p for p in procs.children(os.getpid()) if marker in procs.cmdline(p)]
    assert sleepers == [], "the timed-out nginx -t is killed"
    assert applier.status.summary() == "failed: nginx -t timed out"


async def test_missing_nginx_binary_is_a_clear_failure(prefix: Path) -> None:
    s = settings(prefix, binary="/nonexistent/nginx")
    applier = Applier(s, Fleet.of(A).build, server=Supervisor(s, metrics=Metrics()))

    result = await applier.apply_now()

    assert (result.state, result.stage, result.reason) == (
        "failed",
        "test",
        "nginx binary not found",
    )
    assert result.nginx_message == "nginx binary not found: /nonexistent/nginx"
    assert applier.status.state == "failed"


async def test_an_unexecutable_binary_is_permission_denied(prefix: Path, tmp_path: Path) -> None:
    binary = fake_nginx(tmp_path, "exit 0\n", mode=0o644)
    s = settings(prefix, binary=str(binary))
    applier = Applier(s, Fleet.of(A).build, server=Supervisor(s, metrics=Metrics()))

    result = await applier.apply_now()

    assert (result.state, result.reason) == ("failed", "nginx could not be executed")
    assert result.nginx_message.startswith(f"permission denied executing {binary}")


async def test_a_render_error_keeps_the_last_good_tree(prefix: Path) -> None:
    fleet = Fleet.of(A)
    broken = False

    def build(exclude: frozenset[str]) -> Rendered:
        if broken:
            raise KeyError("upstream u1 referenced by vhost a")
        return fleet.build(exclude)

    applier = Applier(settings(prefix, mode="render-only"), build)
    good = await applier.apply_now()
    broken = True
    fleet.rev = 2

    result = await applier.apply_now()

    assert (result.state, result.stage) == ("failed", "render")
    assert result.reason == "render failed: 'upstream u1 referenced by vhost a'"
    assert result.revision == good.revision
    assert read_tree(prefix)[f"units/{A.replace('/', '_')}.conf"].endswith(b'"ws/vhost/a-1";\n}\n')


@pytest.mark.nginx
async def test_a_tree_broken_outside_any_unit_blames_no_unit(prefix: Path) -> None:
    fleet = Fleet.of(A, "ws/vhost/b", "ws/vhost/c")
    fleet.http_extra = "    no_such_http_directive 1;\n"
    s = settings(prefix)
    applier = Applier(s, fleet.build, server=Supervisor(s, metrics=Metrics()))

    result = await applier.apply_now()

    assert (result.state, result.stage) == ("failed", "test")
    assert result.reason == "nginx -t rejects the configuration even without any unit"
    assert 'unknown directive "no_such_http_directive" in nginx.conf:' in result.nginx_message
    assert result.quarantined == ()
    assert fleet.builds[1] == frozenset(fleet.units), "one test with every unit left out"
    assert len(fleet.builds) == 2
