"""Settings of the applier and the supervisor, and the nginx command lines they run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Mode", "NginxSettings"]

Mode = Literal["managed", "external", "render-only"]


@dataclass(frozen=True)
class NginxSettings:
    """Where nginx lives, how it runs, and the pipeline's bounds (times in seconds)."""

    prefix: Path
    """nginx's ``-p`` prefix (absolute). ``prefix/conf`` is a symlink to the applied tree."""
    mode: Mode = "managed"
    binary: str = "/usr/sbin/nginx"
    error_log: Path | None = None
    """The log the rendered ``error_log`` writes to (read to verify reloads); default
    ``prefix/logs/error.log``. Managed nginx also gets it as ``-e``."""
    pid_file: Path | None = None
    """External mode: the master's pid file; default ``prefix/logs/nginx.pid``."""
    extra_args: tuple[str, ...] = ()
    """Arguments nginx runs with beyond ``-p``/``-e``/``-c`` (external mode: what its
    owner passes, e.g. ``("-g", "daemon off;")``); ``nginx -t`` gets the same."""

    # pipeline
    test_timeout: float = 60.0
    verify_timeout: float = 15.0
    """How long a reload may take to show new workers. Must exceed nginx's own 2.5 s of
    bind retries, after which a rollback's HUP is handled."""
    verify_settle: float = 0.1
    """After new workers appear, how long the error log is still watched."""
    keep_trees: int = 3
    inline_files: int = 64
    """Trees of up to this many files are staged on the event loop's thread: a thread
    hand-off waits twice for the scheduler, which on a busy machine takes longer than
    writing a few files. Larger trees go to a worker thread."""
    inline_flushes: int = 8
    """A tree whose commit takes up to this many fsync(2) calls (the files written
    afresh and the directories) is installed on the loop's thread too; a first tree,
    written whole, is flushed in a worker thread so the loop never waits on the disk
    for long."""
    prune_delay: float = 2.0
    """Old trees are deleted this long after an apply (while the applier runs), off the
    path from an edit to the node's published status - when every node of a machine
    applies the same edit at once, that path is what they compete for. 0: at once."""
    bisect_max_bad: int = 4
    """Bisection's budget of ``nginx -t`` runs is sized to isolate this many bad units."""

    # coalescing
    min_quiet: float = 0.2
    max_quiet: float = 2.0
    splay: float = 0.25
    """Up to this long added to each batch at random, so that nodes learning of an edit
    together do not all reload together (new workers reconnect to the upstreams), nor
    write and flush their trees together (nodes that share a machine or a disk)."""
    lead_after: float | None = 2.0
    """The first change after this long without an apply is applied at once (plus the
    splay); None: always wait ``min_quiet`` (see node.nginx.debounce)."""
    drift_interval: float | None = 30.0
    retry_interval: float = 30.0
    """A failed revision is tried again after this long (or when nginx comes up)."""

    # managed nginx
    start_timeout: float = 10.0
    stop_timeout: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    backoff_reset_after: float = 10.0
    """Up this long, a crash restarts the backoff from ``backoff_initial``."""

    def __post_init__(self) -> None:
        if not self.prefix.is_absolute():
            raise ValueError(f"prefix must be absolute: {self.prefix}")
        if not 0 <= self.min_quiet <= self.max_quiet:
            raise ValueError("need 0 <= min_quiet <= max_quiet")
        if self.prune_delay < 0:
            raise ValueError("prune_delay must be >= 0")
        if self.keep_trees < 2:
            raise ValueError("keep_trees must be at least 2 (the tree and its rollback)")

    @property
    def error_log_path(self) -> Path:
        return self.error_log or self.prefix / "logs" / "error.log"

    @property
    def pid_path(self) -> Path:
        return self.pid_file or self.prefix / "logs" / "nginx.pid"

    @property
    def mode_args(self) -> tuple[str, ...]:
        # A managed nginx must stay in the foreground. Rendered configs therefore carry
        # no `daemon` directive: nginx would reject it as a duplicate of this one.
        managed = ("-g", "daemon off;") if self.mode == "managed" else ()
        return (*managed, *self.extra_args)

    def server_command(self) -> list[str]:
        """The managed master's command line."""
        return [
            self.binary,
            *("-p", str(self.prefix)),
            *("-e", str(self.error_log_path)),
            *("-c", "conf/nginx.conf"),
            *self.mode_args,
        ]

    def test_command(self, conf_file: Path) -> list[str]:
        """``nginx -t`` of ``conf_file`` under the server's prefix and arguments.

        ``-e stderr`` keeps test failures (bisection runs many) out of the error log that
        verification reads, and off paths that only the server may write.
        """
        return [
            self.binary,
            "-t",
            *("-p", str(self.prefix)),
            *("-e", "stderr"),
            *("-c", str(conf_file)),
            *self.mode_args,
        ]
