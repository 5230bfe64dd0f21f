"""The managed nginx: a supervised child in the foreground, restarted with backoff.

Command: ``nginx -p PREFIX -e PREFIX/logs/error.log -c conf/nginx.conf -g 'daemon off;'``.
nginx runs in a session (and process group) of its own, for two reasons measured here:
a terminal's Ctrl-C must not reach it, and when its master dies by SIGKILL the workers
live on, orphaned, still holding the listening sockets - a new master cannot bind until
they are gone. The group lets us find them: they get QUIT (they close their listeners at
once and finish their requests), then KILL after ``stop_timeout``.

A stale master from a daemon that died (found through the pid file, matched by its
command line naming our prefix) is stopped the same way before the first start.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import replace

import structlog
import trio

from node.nginx import procs
from node.nginx.check import exec_error
from node.nginx.config import NginxSettings
from node.nginx.errorlog import SEVERE, summarize
from node.nginx.metrics import Metrics
from node.nginx.server import ServerDown, is_nginx_master
from node.nginx.status import StatusCell, SupervisorStatus

__all__ = ["Backoff", "Supervisor"]

log = structlog.get_logger(__name__)

_POLL = 0.02
_TAIL = 8192


class Backoff:
    """Exponential delays: initial, x2 each time, capped; ``reset()`` starts over."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class _StartFailed(Exception):
    pass


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Supervisor:
    """Runs nginx as our child; a service: ``await nursery.start(supervisor.run)``.

    nginx starts at once if ``prefix/conf/nginx.conf`` exists (serve the last good tree
    while the mesh catches up), else on the applier's first :meth:`ensure_running`.
    """

    def __init__(
        self,
        settings: NginxSettings,
        *,
        metrics: Metrics | None = None,
        on_status: Callable[[SupervisorStatus], None] | None = None,
    ) -> None:
        if settings.mode != "managed":
            raise ValueError(f"a Supervisor runs managed nginx, not {settings.mode!r}")
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.cell: StatusCell[SupervisorStatus] = StatusCell(SupervisorStatus())
        if on_status is not None:
            self.cell.callbacks.append(on_status)
        self._want = trio.Event()
        self._kick = trio.Event()
        self._stderr = bytearray()
        self._spawns = 0
        self._running_spawn = 0

    # -- what the applier uses -----------------------------------------------------------

    @property
    def status(self) -> SupervisorStatus:
        return self.cell.value

    def master_pid(self) -> int | None:
        status = self.cell.value
        return status.pid if status.state == "running" else None

    def run_as(self) -> tuple[int, int] | None:
        return None  # our child runs as we do

    async def ensure_running(self) -> bool:
        """Start nginx now (cutting any backoff short) and wait for the outcome.

        True when the master that came up was spawned after this call began, i.e. it read
        the tree the caller had just swapped in; False when it was already running or
        starting (the caller should reload it)."""
        status = self.cell.value
        if status.state == "running":
            return False
        if status.state in ("stopping", "stopped"):
            raise ServerDown("the nginx supervisor is stopped")
        attempts, spawns = status.attempts, self._spawns
        self._want.set()
        self._kick.set()
        with trio.move_on_after(self.settings.start_timeout + self.settings.stop_timeout + 5):
            status = await self.cell.wait_for(
                lambda s: s.attempts > attempts and s.state != "starting"
            )
        if status.attempts <= attempts:
            raise ServerDown("nginx did not start: is the supervisor running?")
        if status.state != "running":
            raise ServerDown(f"nginx did not start: {status.message or status.last_exit}")
        return self._running_spawn > spawns

    # -- the service ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._stop_stale_master()
        if (self.settings.prefix / "conf" / "nginx.conf").exists():
            self._want.set()
        task_status.started()
        try:
            await self._loop()
        finally:
            self._set(state="stopped", pid=None, retry_in=None)
            self.metrics.up.set(0)

    def _set(self, **changes: object) -> None:
        self.cell.set(replace(self.cell.value, **changes))  # type: ignore[arg-type]

    async def _loop(self) -> None:
        s = self.settings
        backoff = Backoff(s.backoff_initial, s.backoff_max)
        while True:
            await self._want.wait()
            self._kick = trio.Event()
            self._set(state="starting", retry_in=None)
            started = trio.current_time()
            try:
                exit_text = await self._run_once()
            except _StartFailed as exc:
                delay = backoff.next()
                status = self.cell.value
                self._set(
                    state="backoff",
                    pid=None,
                    attempts=status.attempts + 1,
                    message=str(exc),
                    retry_in=delay,
                )
                log.warning("nginx.start_failed", message=str(exc), retry_in=delay)
            else:
                if trio.current_time() - started >= s.backoff_reset_after:
                    backoff.reset()
                delay = backoff.next()
                self.metrics.restarts.inc()
                status = self.cell.value
                self._set(
                    state="backoff",
                    pid=None,
                    restarts=status.restarts + 1,
                    last_exit=exit_text,
                    message=f"nginx {exit_text}",
                    retry_in=delay,
                )
                log.warning("nginx.exited", how=exit_text, restart_in=delay)
            self.metrics.up.set(0)
            with trio.move_on_after(delay):
                await self._kick.wait()

    async def _run_once(self) -> str:
        """One life of nginx: start, wait for workers, wait for exit; raise _StartFailed
        when it never came up. Returns how it exited."""
        try:
            proc = await trio.lowlevel.open_process(
                self.settings.server_command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise _StartFailed(exec_error(self.settings.binary, exc)[1]) from exc
        self._spawns += 1
        spawn = self._spawns
        self._stderr.clear()
        up = False
        try:
            async with trio.open_nursery() as nursery:
                drained = trio.Event()
                nursery.start_soon(self._drain, proc, drained)
                up = await self._wait_up(proc)
                if up:
                    self._running_spawn = spawn
                    attempts = self.status.attempts + 1
                    self._set(state="running", pid=proc.pid, attempts=attempts, message="")
                    self.metrics.up.set(1)
                    log.info("nginx.running", pid=proc.pid)
                    await proc.wait()
                else:
                    await self._terminate(proc, announce=False)
                await self._reap_group(proc.pid)
                # The pipe closes when the whole group is gone; do not wait on strangers.
                with trio.move_on_after(1.0):
                    await drained.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._terminate(proc)
                await self._reap_group(proc.pid)
                if proc.stderr is not None:
                    await proc.stderr.aclose()  # our end of the pipe, once per life
        assert proc.returncode is not None
        if not up:
            text = self._stderr.decode(errors="replace")
            detail = summarize(text, levels=SEVERE) or text.strip()[-500:]
            raise _StartFailed(detail or describe_exit(proc.returncode))
        return describe_exit(proc.returncode)

    async def _drain(self, proc: trio.Process, done: trio.Event) -> None:
        # The pipe must be read or nginx would block writing to it; keep the tail.
        assert proc.stderr is not None
        try:
            while chunk := await proc.stderr.receive_some(4096):
                self._stderr += chunk
                del self._stderr[:-_TAIL]
        except trio.ClosedResourceError:
            pass
        finally:
            done.set()

    async def _wait_up(self, proc: trio.Process) -> bool:
        """Up means the master forked workers (it does so only after binding)."""
        with trio.move_on_after(self.settings.start_timeout):
            while proc.poll() is None:
                if procs.children(proc.pid):
                    return True
                await trio.sleep(_POLL)
        return False

    async def _terminate(self, proc: trio.Process, *, announce: bool = True) -> None:
        """Graceful stop: QUIT, then TERM, then KILL, each after a timeout."""
        if proc.returncode is not None:
            return
        if announce:
            self._set(state="stopping")
        for sig, grace in (
            (signal.SIGQUIT, self.settings.stop_timeout),
            (signal.SIGTERM, 2.0),
            (signal.SIGKILL, None),
        ):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            if grace is None:
                await proc.wait()
            else:
                with trio.move_on_after(grace):
                    await proc.wait()

    async def _reap_group(self, pgid: int) -> None:
        """Stop what is left of nginx's process group (orphaned workers)."""
        await stop_group(pgid, self.settings.stop_timeout)

    async def _stop_stale_master(self) -> None:
        pid = procs.read_pid_file(self.settings.pid_path)
        if pid is None or not procs.alive(pid):
            return
        words = procs.cmdline(pid).split()
        prefix = str(self.settings.prefix)
        ours = any(a == "-p" and b.rstrip("/") == prefix for a, b in itertools.pairwise(words))
        if not is_nginx_master(" ".join(words)) or not ours:
            return
        stat = procs.read_stat(pid)
        log.warning("nginx.stale_master", pid=pid)
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        with trio.move_on_after(self.settings.stop_timeout):
            await poll_until(lambda: not procs.alive(pid))
        # Only a group nginx leads is ours to stop (we start it in a session of its own);
        # a master started by hand shares its shell's group.
        if stat is not None and stat.pgrp == pid:
            await stop_group(stat.pgrp, self.settings.stop_timeout)
        if procs.alive(pid):
            os.kill(pid, signal.SIGKILL)


async def poll_until(predicate: Callable[[], bool], interval: float = _POLL) -> None:
    """Wait until ``predicate()`` holds. For process states, which offer no event (a
    process that is not our child cannot be waited on)."""
    while True:
        if predicate():
            return
        await trio.sleep(interval)


async def stop_group(pgid: int, grace: float) -> None:
    """QUIT every live member of process group ``pgid``; KILL them after ``grace``."""
    for sig, wait in ((signal.SIGQUIT, grace), (signal.SIGKILL, 1.0)):
        if not procs.group_members(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        with trio.move_on_after(wait):
            await poll_until(lambda: not procs.group_members(pgid))
