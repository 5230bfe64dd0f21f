"""The managed nginx: restart after SIGKILL, graceful stop, port in use, stale masters."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import trio

from node.nginx import Metrics, Supervisor, procs
from node.nginx.supervisor import Backoff
from tests.node.conftest import managed
from tests.node.trees import WAIT, Fleet, error_log_count, serves, settings

pytestmark = pytest.mark.nginx

A = "ws/vhost/a"


async def test_a_killed_nginx_is_restarted_and_its_orphans_stopped(prefix: Path) -> None:
    fleet = Fleet.of(A)
    async with managed(fleet, prefix) as m:
        await m.wait(lambda s: s.state == "ok")
        master = m.master()
        orphans = procs.children(master)

        os.kill(master, signal.SIGKILL)
        with trio.fail_after(WAIT):
            status = await m.supervisor.cell.wait_for(
                lambda s: s.state == "running" and s.pid != master
            )

        assert (status.restarts, status.last_exit) == (1, "killed by SIGKILL")
        # A SIGKILLed master leaves its workers serving on the old sockets, which would
        # keep a new master from binding: they are stopped before the restart.
        assert not any(procs.alive(pid) for pid in orphans)
        await serves(fleet.units[A].port, f"{A}-1")
        assert m.metrics.value("nxmesh_nginx_restarts_total") == 1
        assert m.metrics.value("nxmesh_nginx_up") == 1
        assert m.applier.status.state == "ok"


async def test_stopping_the_service_stops_nginx_gracefully(prefix: Path) -> None:
    fleet = Fleet.of(A)
    async with managed(fleet, prefix) as m:
        await m.wait(lambda s: s.state == "ok")
        master = m.master()
        group = procs.group_members(master)
        assert len(group) >= 2
    assert m.supervisor.status.state == "stopped"
    assert not procs.group_members(master)
    assert error_log_count(prefix, "signal 3 (SIGQUIT) received") == 1
    assert error_log_count(prefix, "gracefully shutting down") >= 1
    assert m.metrics.value("nxmesh_nginx_up") == 0


async def test_port_in_use_at_start_fails_clearly_then_recovers(prefix: Path) -> None:
    fleet = Fleet.of(A)
    holder = socket.socket()
    holder.bind(("127.0.0.1", fleet.units[A].port))
    holder.listen()
    # nginx -t passes (it tolerates EADDRINUSE); the start fails after nginx's own
    # 2.5 s of bind retries.
    async with managed(fleet, prefix) as m:
        failed = await m.wait(lambda s: s.state == "failed")
        assert (failed.stage, failed.reason) == ("start", "nginx is not running")
        assert "Address already in use" in failed.nginx_message
        assert m.supervisor.status.state in ("backoff", "starting")
        assert (
            "Address already in use"
            in (await m.supervisor.cell.wait_for(lambda s: s.state == "backoff")).message
        )

        holder.close()

        status = await m.wait(lambda s: s.state == "ok")
        assert status.revision == fleet.build(frozenset()).revision
        await serves(fleet.units[A].port, f"{A}-1")


async def test_a_missing_binary_is_reported_by_the_supervisor(prefix: Path) -> None:
    fleet = Fleet.of(A)
    s = settings(prefix, binary="/nonexistent/nginx")
    (prefix / "conf").mkdir(parents=True)
    (prefix / "conf" / "nginx.conf").write_bytes(fleet.files()["nginx.conf"])
    supervisor = Supervisor(s, metrics=Metrics())
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with trio.fail_after(WAIT):
            status = await supervisor.cell.wait_for(lambda s: s.state == "backoff")
        assert status.message == "nginx binary not found: /nonexistent/nginx"
        assert status.pid is None
        nursery.cancel_scope.cancel()


async def test_a_stale_master_of_our_prefix_is_stopped_before_starting(prefix: Path) -> None:
    fleet = Fleet.of(A)
    s = settings(prefix)
    async with managed(fleet, prefix) as m:
        await m.wait(lambda s: s.state == "ok")
    # A daemon that died by SIGKILL leaves its nginx running; here one is started by
    # hand, in its own session, as the supervisor would have.
    stale = await trio.lowlevel.open_process(
        s.server_command(), start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        await serves(fleet.units[A].port, f"{A}-1")
        supervisor = Supervisor(s, metrics=Metrics())
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)  # stops the stale master first
            assert stale.poll() is not None
            with trio.fail_after(WAIT):
                status = await supervisor.cell.wait_for(lambda s: s.state == "running")
            assert status.pid != stale.pid
            await serves(fleet.units[A].port, f"{A}-1")
            nursery.cancel_scope.cancel()
    finally:
        if stale.poll() is None:
            stale.kill()
        await stale.wait()


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    assert [backoff.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.1
