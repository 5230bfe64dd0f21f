"""Facts about processes, read from ``/proc`` (Linux).

Children are found by scanning ``/proc/*/stat`` for a parent pid: the cheaper
``/proc/<pid>/task/*/children`` needs ``CONFIG_PROC_CHILDREN``, which some kernels (this
project's CI among them) lack. A scan of a few hundred processes takes a few ms.
Zombies count as gone everywhere: an orphaned worker can stay a zombie for a second
until init reaps it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcStat",
    "alive",
    "children",
    "cmdline",
    "group_members",
    "owner",
    "read_pid_file",
    "read_stat",
]

_PROC = Path("/proc")
_GONE = frozenset({"Z", "X", "x"})


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int

    @property
    def live(self) -> bool:
        return self.state not in _GONE


def read_stat(pid: int) -> ProcStat | None:
    """The process's state, parent and group; ``None`` when there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcStat(pid, fields[0].decode(), int(fields[1]), int(fields[2]))


def _all() -> Iterator[ProcStat]:
    with os.scandir(_PROC) as entries:
        for entry in entries:
            if entry.name.isdigit():
                stat = read_stat(int(entry.name))
                if stat is not None:
                    yield stat


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = read_stat(pid)
    return stat is not None and stat.live


def children(pid: int) -> frozenset[int]:
    """Live children of ``pid`` (for an nginx master: its workers and helpers)."""
    return frozenset(s.pid for s in _all() if s.ppid == pid and s.live)


def group_members(pgid: int) -> frozenset[int]:
    """Live members of process group ``pgid``."""
    return frozenset(s.pid for s in _all() if s.pgrp == pgid and s.live)


def owner(pid: int) -> tuple[int, int] | None:
    """Effective (uid, gid) of ``pid``."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    ids: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = int(rest.split()[1])  # real, effective, saved, fs
    if len(ids) != 2:
        return None
    return ids["Uid"], ids["Gid"]


def cmdline(pid: int) -> str:
    """The command line as the process shows it (nginx rewrites its own)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_pid_file(path: Path) -> int | None:
    """The pid in ``path``; ``None`` when the file is missing, empty or not a number."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None
