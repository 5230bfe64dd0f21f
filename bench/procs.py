"""Process helpers for benchmarks that run many local processes (loopback only).

- :func:`free_ports`: ports free for both TCP and UDP on a loopback address;
- :class:`Proc`: a child in its own process group, optionally with a JSON-lines stdout
  reader thread and a JSON-lines stdin writer;
- :class:`ProcSet`: every child a benchmark started, ended together (TERM, then KILL);
- :func:`rss_bytes`, :func:`cpu_seconds`: what /proc says of a process;
- :func:`check_alive`: a clear error naming a child that exited, with its stderr tail;
- :func:`bench_session`: a benchmark's body - one-line errors, exit codes, cleanup of its
  work directory; :func:`terminate_as_exit`: SIGTERM/SIGHUP become SystemExit, so
  ``finally`` blocks run;
- :class:`MachineLoad`: load average and CPU use over a measuring window, the machine's
  and that of everything but the benchmark's own process tree;
- :func:`code_version`: the commit measured and what differed from it.

Children are started in a new session (so a Ctrl-C on the terminal reaches only the
benchmark, which then ends them itself) and, on Linux, with a parent-death signal, so
that even a benchmark killed with SIGKILL leaves none behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from bench.report import progress

PORT_RANGE = (20000, 32000)
"""Ports are drawn from here: below Linux's default ephemeral range (32768-60999), so an
outgoing connection made meanwhile cannot take a port a child is about to bind."""

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def free_ports(
    count: int, host: str = "127.0.0.1", *, rng: random.Random | None = None
) -> list[int]:
    """``count`` distinct ports on which both a TCP and a UDP socket can bind ``host`` now."""
    rng = rng or random.Random()
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 50):
            if len(ports) == count:
                break
            port = rng.randrange(*PORT_RANGE)
            if port in ports:
                continue
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp.bind((host, port))
                udp.bind((host, port))
            except OSError:
                tcp.close()
                udp.close()
                continue
            held += [tcp, udp]
            ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) < count:
        raise RuntimeError(f"found only {len(ports)} of {count} free ports on {host}")
    return ports


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the parent (Linux only).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Proc:
    """One child process in its own process group.

    With ``json_lines=True`` its stdin is a pipe (see :meth:`send`) and a reader thread
    parses each stdout line as JSON into :attr:`events` (non-JSON lines go to
    :attr:`other_lines`), calls ``on_event(proc, event)`` (under ``cond``, so keep it
    short) and notifies ``cond`` - share one condition among many processes to wait on
    all of them at once with :meth:`ProcSet.wait_for`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        json_lines: bool = False,
        cond: threading.Condition | None = None,
        stderr_path: Path | None = None,
        stdout_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        on_event: Callable[[Proc, dict[str, Any]], None] | None = None,
    ) -> None:
        self.name = name
        self.on_event = on_event
        self.argv = list(argv)
        self.cond = cond or threading.Condition()
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self.stderr_path = stderr_path
        self._stderr: IO[bytes] | None = open(stderr_path, "wb") if stderr_path else None  # noqa: SIM115
        self._stdout: IO[bytes] | None = None
        if json_lines:
            stdout: int | IO[bytes] = subprocess.PIPE
        elif stdout_path is not None:
            self._stdout = open(stdout_path, "wb")  # noqa: SIM115
            stdout = self._stdout
        else:
            stdout = subprocess.DEVNULL
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if json_lines else subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._stderr if self._stderr else subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        self.pid = self.popen.pid
        self._reader: threading.Thread | None = None
        if json_lines:
            self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
            self._reader.start()

    def _read(self) -> None:
        out = self.popen.stdout
        assert out is not None
        for raw in out:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            with self.cond:
                if isinstance(obj, dict):
                    self.events.append(obj)
                    if self.on_event is not None:
                        try:
                            self.on_event(self, obj)
                        except Exception as exc:  # a bug in the callback must not stall
                            self.other_lines.append(f"on_event failed: {exc!r}")
                else:
                    self.other_lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def send(self, obj: Mapping[str, Any]) -> float:
        """Write ``obj`` as one JSON line to stdin; returns ``time.time()`` taken just
        before the write."""
        stdin = self.popen.stdin
        if stdin is None:
            raise RuntimeError(f"{self.name}: started without a stdin pipe")
        data = (json.dumps(obj) + "\n").encode()
        t = time.time()
        stdin.write(data)
        stdin.flush()
        return t

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the events read so far."""
        with self.cond:
            return list(self.events)

    def find(
        self, predicate: Callable[[dict[str, Any]], bool], start: int = 0
    ) -> dict[str, Any] | None:
        """The first event from index ``start`` on that satisfies ``predicate``."""
        with self.cond:
            for event in self.events[start:]:
                if predicate(event):
                    return event
        return None

    def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> dict[str, Any] | None:
        """Wait (bounded) for an event satisfying ``predicate``; None on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events[start:]:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reading()):
                    return None
                self.cond.wait(min(left, 0.5))

    def _reading(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr_tail(self, lines: int = 15) -> str:
        """The last lines the child wrote to its stderr file, for error messages."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        text = self.stderr_path.read_text("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (ignored if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def close_files(self) -> None:
        for f in (self.popen.stdin, self.popen.stdout, self._stderr, self._stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


class ProcSet:
    """The children of one benchmark phase; :meth:`stop_all` ends every one of them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.procs: list[Proc] = []

    def spawn(self, argv: Sequence[str], *, name: str, **kwargs: Any) -> Proc:
        """Start a :class:`Proc` sharing this set's condition."""
        proc = Proc(argv, name=name, cond=self.cond, **kwargs)
        self.procs.append(proc)
        return proc

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (bounded) until ``predicate`` - run under the shared condition - holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def dead(self) -> list[Proc]:
        """Children that have exited."""
        return [p for p in self.procs if not p.alive]

    def stop_all(self, grace: float = 3.0) -> None:
        """TERM every process group, wait up to ``grace`` seconds, then KILL the rest."""
        stop_processes(self.procs, grace)
        self.procs.clear()


def stop_processes(procs: Iterable[Proc], grace: float = 3.0) -> None:
    """TERM each process group, wait (bounded) for all, KILL what is left, reap."""
    procs = list(procs)
    for p in procs:
        if p.alive:
            p.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        # KILL the group even if the leader exited: its children (e.g. event handlers)
        # may still run.
        p.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(timeout=2.0)
        p.close_files()


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc/PID/status); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (utime + stime from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def total_rss_bytes(pids: Iterable[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def idle_cpu_percent(pids: Sequence[int], window: float) -> float:
    """CPU % per process (100 = one core) of ``pids`` over ``window`` seconds of waiting."""
    before = total_cpu_seconds(pids)
    start = time.monotonic()
    time.sleep(window)
    used = total_cpu_seconds(pids) - before
    wall = time.monotonic() - start
    return used / wall / max(1, len(pids)) * 100


def check_alive(procs: Iterable[Proc]) -> None:
    """Raise RuntimeError naming the first child that exited, with its stderr's tail."""
    for p in procs:
        if not p.alive:
            raise RuntimeError(
                f"{p.name} exited with status {p.popen.returncode}; its stderr ends:\n"
                f"{p.stderr_tail()}\n(command: {shlex.join(p.argv)})"
            )


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into SystemExit, so ``finally`` blocks clean up."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def bench_session(
    workdir: Path,
    *,
    keep: bool = False,
    errors: tuple[type[BaseException], ...] = (RuntimeError, OSError),
    kept: str = "kept",
) -> Iterator[None]:
    """A benchmark's body: SIGTERM/SIGHUP end it like Ctrl-C, an expected error is one
    line and exit 1, Ctrl-C exit 130; ``workdir`` is removed afterwards unless ``keep``."""
    try:
        with terminate_as_exit():
            yield
    except errors as exc:
        progress(f"error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        progress("interrupted")
        sys.exit(130)
    finally:
        if keep:
            progress(f"{kept} {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def own_cpu_seconds() -> float:
    """CPU time of this process, of the children it reaped, and of every live descendant
    (with the children *they* reaped: an nginx -t a daemon ran, say)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    total = 0.0
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 here
            total += sum(int(x) for x in fields[11:15]) / _CLK_TCK
        todo += children.get(pid, [])
    return total


class MachineLoad:
    """What the machine did while a benchmark measured: load averages at :meth:`start`
    and :meth:`stop`, and the CPU use in between (100 = every core busy) of the whole
    machine and of everything *else* - the machine's less this benchmark's own process
    tree (:func:`own_cpu_seconds`), i.e. what other work took from the cores."""

    def __init__(self) -> None:
        self.load_before = self.load_after = (0.0, 0.0, 0.0)
        self._ticks = (0, 0)
        self._own = 0.0
        self.cpu_busy_pct: float | None = None
        self.others_busy_pct: float | None = None

    def start(self) -> MachineLoad:
        self.load_before = load_average()
        self._own = own_cpu_seconds()
        self._ticks = _cpu_ticks()
        return self

    def stop(self) -> MachineLoad:
        busy, total = _cpu_ticks()
        own = own_cpu_seconds() - self._own
        d_total = total - self._ticks[1]
        if d_total:
            d_busy = busy - self._ticks[0]
            self.cpu_busy_pct = round(100 * d_busy / d_total, 1)
            others = max(0.0, d_busy - own * _CLK_TCK)
            self.others_busy_pct = round(100 * others / d_total, 1)
        self.load_after = load_average()
        return self

    def summary(self) -> dict[str, Any]:
        return {
            "load_before": list(self.load_before),
            "load_after": list(self.load_after),
            "cpu_busy_pct": self.cpu_busy_pct,
            "others_busy_pct": self.others_busy_pct,
            "cpus": os.cpu_count(),
        }


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The commit measured and the tracked files that differed from it (uncommitted work
    in a shared checkout changes what a benchmark runs)."""
    root = root or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "-uno").splitlines() if line]
    return {"commit": git("rev-parse", "--short=12", "HEAD") or None, "modified": dirty}
