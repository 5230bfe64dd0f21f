"""Reload a running nginx and verify it took: a new worker generation, no emerg/alert.

nginx handles HUP by re-reading its configuration; on success it starts new workers and
retires the old, on failure it logs ``[emerg]`` from the master and keeps the old workers
(measured: a port held by another socket passes ``nginx -t`` - which tolerates
EADDRINUSE - then fails the reload after 2.5 s of bind retries). Only lines from the master
and the new workers count: old workers retiring may log alerts about their connections.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import trio

from node.nginx import procs
from node.nginx.errorlog import SEVERE, LogLine, LogTail, summarize

__all__ = ["ReloadOutcome", "reload_and_verify"]

_POLL = 0.025


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    reason: str = ""
    message: str = ""
    """nginx's emerg/alert lines."""
    duration: float = 0.0
    """HUP to new workers seen (or to the failure)."""
    workers: frozenset[int] = frozenset()


def _severe(lines: list[LogLine], pids: set[int]) -> list[LogLine]:
    return [ln for ln in lines if ln.level in SEVERE and (ln.pid is None or ln.pid in pids)]


async def reload_and_verify(
    master: int, error_log: Path, *, limit: float, settle: float, check_log: bool = True
) -> ReloadOutcome:
    """Send HUP to ``master``; wait up to ``limit`` seconds for new workers, then ``settle``
    more for late errors.

    ``check_log=False`` is for a rollback: the failed reload that caused it may still be
    logging (nginx retries a bind for 2.5 s) and our HUP waits until it ends; only the new
    workers that follow prove the rollback took.
    """
    before = procs.children(master)
    tail = LogTail(error_log)
    start = trio.current_time()
    try:
        os.kill(master, signal.SIGHUP)
    except ProcessLookupError:
        return ReloadOutcome(False, f"nginx master (pid {master}) is gone")
    except PermissionError:
        return ReloadOutcome(False, f"not permitted to signal the nginx master (pid {master})")
    seen: list[LogLine] = []
    new: frozenset[int] = frozenset()
    settled_at: float | None = None
    appeared = 0.0
    with trio.move_on_after(limit):
        while True:
            seen += tail.read()
            bad = _severe(seen, {master, *new}) if check_log else []
            now = trio.current_time()
            if bad:
                return ReloadOutcome(
                    False,
                    "nginx reported errors while reloading",
                    summarize(bad, levels=SEVERE),
                    now - start,
                )
            if not procs.alive(master):
                return ReloadOutcome(
                    False,
                    f"nginx master (pid {master}) exited while reloading",
                    summarize(seen),
                    now - start,
                )
            if settled_at is None:
                new = procs.children(master) - before
                if new:
                    appeared, settled_at = now - start, now + settle
            elif now >= settled_at:
                return ReloadOutcome(True, duration=appeared, workers=new)
            await trio.sleep(_POLL)
    return ReloadOutcome(
        False,
        f"no new nginx workers within {limit:g} s of the reload",
        summarize(seen),
        trio.current_time() - start,
    )
