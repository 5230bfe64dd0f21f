"""What the applier and the supervisor report, and a small observable cell to report it.

The daemon publishes these in its membership metadata: it either registers a callback
(``on_status``) or awaits :meth:`StatusCell.wait_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import structlog
import trio

__all__ = [
    "ApplierState",
    "ApplierStatus",
    "ApplyResult",
    "DriftReport",
    "Quarantined",
    "StatusCell",
    "SupervisorState",
    "SupervisorStatus",
]

log = structlog.get_logger(__name__)

ApplierState = Literal["pending", "ok", "quarantined", "failed"]
"""``pending`` (nothing applied yet), ``ok``, ``quarantined`` (applied without some
units), ``failed`` (the last attempt failed; the last good tree still serves)."""

SupervisorState = Literal["waiting", "starting", "running", "backoff", "stopping", "stopped"]
"""``waiting`` (no configuration yet), ``starting``, ``running`` (workers up), ``backoff``
(down; a restart is pending - ``message`` says why), ``stopping``, ``stopped``."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A unit left out of the applied tree, and nginx's reason."""

    unit: str
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of one pass of the pipeline."""

    state: ApplierState
    revision: str | None
    """The revision serving after this pass (the last good one when it failed)."""
    desired_revision: str | None
    """The revision of the full render (every unit included)."""
    changed: bool = False
    """A new tree was swapped in and kept."""
    reloaded: bool = False
    """nginx was sent HUP for the new tree and its new workers were verified."""
    rolled_back: bool = False
    quarantined: tuple[Quarantined, ...] = ()
    stage: str = ""
    """Where a failure happened: ``render``, ``stage``, ``test``, ``reload``, ``start``,
    ``internal``; empty on success."""
    reason: str = ""
    """What failed, in our words."""
    nginx_message: str = ""
    """nginx's own text (``nginx -t`` stderr, error-log lines, startup stderr)."""
    checks: int = 0
    """``nginx -t`` runs in this pass (1 + bisection)."""
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class ApplierStatus:
    """The applier's current state: what serves, and how the last attempt went."""

    state: ApplierState = "pending"
    revision: str | None = None
    desired_revision: str | None = None
    quarantined: tuple[Quarantined, ...] = ()
    stage: str = ""
    reason: str = ""
    nginx_message: str = ""
    drift: tuple[str, ...] = ()
    """Paths found drifted by the last drift check that found any (then repaired)."""
    updated_at: float = 0.0
    """Wall-clock time of this status (``time.time()``)."""
    duration: float = 0.0
    """Seconds the pass that produced this status took (0 for a tree found at start)."""
    applied_at: float | None = None
    """Wall-clock time the serving tree was applied (None before the first)."""

    def summary(self) -> str:
        """One short line, e.g. ``ok``, ``quarantined 2``, ``failed: nginx -t timed out``."""
        if self.state == "quarantined":
            return f"quarantined {len(self.quarantined)}"
        if self.state == "failed":
            return f"failed: {self.reason}"
        return self.state


@dataclass(frozen=True, slots=True)
class DriftReport:
    """What a drift check found, and whether it repaired it."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    link: str = ""
    """Non-empty when ``prefix/conf`` no longer points at the applied tree."""
    repaired: bool = False
    result: ApplyResult | None = None

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.added or self.link)

    def paths(self) -> tuple[str, ...]:
        """Every drifted path (``conf`` for a repointed link)."""
        return (*self.changed, *self.missing, *self.added, *(("conf",) if self.link else ()))


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    """The managed nginx process."""

    state: SupervisorState = "waiting"
    pid: int | None = None
    attempts: int = 0
    """Start attempts whose outcome is known (running or failed)."""
    restarts: int = 0
    """Times nginx went down unexpectedly after having been up."""
    last_exit: str = ""
    message: str = ""
    """Why nginx is down: its own startup errors, or how it exited."""
    retry_in: float | None = None


T = TypeVar("T")


@dataclass(eq=False)
class StatusCell(Generic[T]):
    """A value that tasks can wait on and callbacks observe; every change wakes waiters."""

    value: T
    callbacks: list[Callable[[T], None]] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event, init=False)

    def set(self, value: T) -> None:
        self.value = value
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        for callback in self.callbacks:
            try:
                callback(value)
            except Exception:
                # A subscriber's bug must not break the applier or the supervisor.
                log.exception("nginx.status_callback_failed")

    async def wait_for(self, predicate: Callable[[T], bool]) -> T:
        """Return the value once ``predicate`` holds (checked on every change)."""
        while not predicate(self.value):
            await self._changed.wait()
        return self.value

    async def next_change(self) -> T:
        await self._changed.wait()
        return self.value
