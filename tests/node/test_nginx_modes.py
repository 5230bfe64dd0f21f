"""render-only (no nginx at all) and external (someone else's nginx, found by pid file)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
import trio

from node.nginx import Applier, procs
from node.nginx.supervisor import stop_group
from render.model import Rendered
from tests.node.trees import (
    NGINX,
    Fleet,
    listing,
    live_tree,
    read_tree,
    serves,
    settings,
)

A = "ws/vhost/a"


@pytest.mark.parametrize("inline_files", [0, 64], ids=["worker-thread", "inline"])
async def test_render_only_writes_and_swaps_trees_without_nginx(
    prefix: Path, inline_files: int
) -> None:
    fleet = Fleet.of(A, "ws/vhost/b")
    # No nginx is ever executed: the binary does not exist.
    s = settings(prefix, mode="render-only", binary="/nonexistent/nginx", inline_files=inline_files)
    applier = Applier(s, fleet.build)

    first = await applier.apply_now()

    assert (first.state, first.changed, first.reloaded, first.checks) == ("ok", True, False, 0)
    assert (prefix / "conf").is_symlink()
    assert read_tree(prefix) == fleet.files()
    assert not (prefix / "logs" / "nginx.pid").exists()
    trees = [live_tree(prefix)]
    for rev in range(2, 7):
        fleet.rev = rev
        result = await applier.apply_now()
        assert result.changed
        assert read_tree(prefix) == fleet.files()
        trees.append(live_tree(prefix))
    assert len(set(trees)) == 6, "every revision got a fresh tree"
    kept = listing(prefix, "conf.*")
    assert kept == sorted(t.name for t in trees[-3:]), "only the newest keep_trees=3 remain"
    assert (await applier.apply_now()).changed is False


async def test_a_running_applier_prunes_old_trees_after_publishing(prefix: Path) -> None:
    fleet = Fleet.of(A, "ws/vhost/b")
    s = settings(prefix, mode="render-only", binary="/nonexistent/nginx", prune_delay=0.2)
    applier = Applier(s, fleet.build)
    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        await applier.cell.wait_for(lambda st: st.state == "ok")
        for rev in range(2, 6):
            fleet.rev = rev
            assert (await applier.apply_now()).changed
        # Published (the status says so), old trees still there: deleting them waited.
        assert applier.status.revision == fleet.build(frozenset()).revision
        assert len(listing(prefix, "conf.*")) > s.keep_trees
        with trio.fail_after(10):
            await applier.prunes.wait_for(lambda n: n >= 1)
        kept = listing(prefix, "conf.*")
        assert len(kept) == s.keep_trees
        assert live_tree(prefix).name in kept
        assert read_tree(prefix) == fleet.files()
        nursery.cancel_scope.cancel()


async def test_a_pass_lets_the_task_that_caused_it_finish_first(prefix: Path) -> None:
    fleet = Fleet.of(A)
    order: list[str] = []

    def build(exclude: frozenset[str]) -> Rendered:
        order.append("pass")
        return fleet.build(exclude)

    applier = Applier(settings(prefix, mode="render-only", binary="/nonexistent/nginx"), build)

    async def answer() -> None:  # an API request after its edit: a few more steps to go
        for _ in range(20):
            await trio.lowlevel.checkpoint()
        order.append("answered")

    async with trio.open_nursery() as nursery:
        await nursery.start(applier.run)
        first = await applier.cell.wait_for(lambda st: st.state == "ok")
        order.clear()
        fleet.rev = 2
        applier.submit()  # a leading edge: due at once
        nursery.start_soon(answer)
        with trio.fail_after(10):
            await applier.cell.wait_for(lambda st: st.revision != first.revision)
        assert order == ["answered", "pass"]
        nursery.cancel_scope.cancel()


@pytest.mark.nginx
async def test_external_nginx_is_found_by_pid_file_and_reloaded(prefix: Path) -> None:
    fleet = Fleet.of(A)
    s = settings(prefix, mode="external")
    applier = Applier(s, fleet.build)

    # Nobody runs nginx yet: the tested tree is put in place, the state says why it is
    # not serving.
    first = await applier.apply_now()
    assert (first.state, first.stage) == ("failed", "start")
    assert "nginx is not running (no pid in" in first.nginx_message
    assert read_tree(prefix) == fleet.files()

    # Its owner starts nginx (daemonized, as a service manager would) on that tree.
    await trio.run_process(
        [NGINX, "-p", str(prefix), "-e", str(s.error_log_path), "-c", "conf/nginx.conf"]
    )
    master = procs.read_pid_file(s.pid_path)
    assert master is not None
    try:
        await serves(fleet.units[A].port, f"{A}-1")
        retried = await applier.apply_now()  # the failed revision is tried again
        assert (retried.state, retried.reloaded) == ("ok", True)

        fleet.rev = 2
        result = await applier.apply_now()

        assert (result.state, result.reloaded) == ("ok", True)
        await serves(fleet.units[A].port, f"{A}-2")
        assert procs.read_pid_file(s.pid_path) == master
    finally:
        await stop_group(master, 10.0)  # a daemonized nginx leads its own group


def chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)


@pytest.mark.nginx
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run nginx as another user")
async def test_nginx_t_runs_as_the_external_masters_user(prefix: Path) -> None:
    # A root `nginx -t` creates the files a configuration names (here a new log) owned
    # by root; an nginx master running as www-data then cannot open them on reload.
    fleet = Fleet.of(A)
    s = settings(prefix, mode="external")
    applier = Applier(s, fleet.build)
    assert (await applier.apply_now()).stage == "start"  # tree in place, nothing running
    www = pwd.getpwnam("www-data")
    chown_tree(prefix, www.pw_uid, www.pw_gid)
    await trio.run_process(
        [NGINX, "-p", str(prefix), "-e", str(s.error_log_path), "-c", "conf/nginx.conf"],
        user=www.pw_uid,
        group=www.pw_gid,
        extra_groups=[],
    )
    master = procs.read_pid_file(s.pid_path)
    assert master is not None
    try:
        await serves(fleet.units[A].port, f"{A}-1")
        assert procs.owner(master) == (www.pw_uid, www.pw_gid)
        fleet.rev = 2
        fleet.http_extra = "    access_log logs/new-access.log;\n"

        result = await applier.apply_now()

        assert (result.state, result.reloaded) == ("ok", True), result
        assert (prefix / "logs/new-access.log").stat().st_uid == www.pw_uid
        await serves(fleet.units[A].port, f"{A}-2")
    finally:
        await stop_group(master, 10.0)  # a daemonized nginx leads its own group
