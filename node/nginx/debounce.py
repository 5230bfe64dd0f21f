"""Coalescing of change notifications into few applies.

The first change after a quiet spell (nothing due for ``lead_after`` seconds) is due at
once: a lone edit is not held back for a quiet period that only pays off in bursts.
Every other batch is due ``min_quiet`` after its last change, but never later than
``max_quiet`` after its first. Either way a random splay drawn once per batch is added:
nodes that all learn of an edit at the same moment then do not all reload at the same
moment. A burst thus costs one leading apply and then one per ``max_quiet`` at most.
"""

from __future__ import annotations

import math
import random

import trio

__all__ = ["Debouncer"]


class Debouncer:
    """``poke()`` on every change; ``await wait()`` returns once per due batch."""

    def __init__(
        self,
        min_quiet: float = 0.2,
        max_quiet: float = 2.0,
        splay: float = 0.0,
        rng: random.Random | None = None,
        lead_after: float | None = None,
    ) -> None:
        if not 0 <= min_quiet <= max_quiet or splay < 0:
            raise ValueError("need 0 <= min_quiet <= max_quiet and splay >= 0")
        if lead_after is not None and lead_after < 0:
            raise ValueError("lead_after must be >= 0 (or None: never lead)")
        self.min_quiet = min_quiet
        self.max_quiet = max_quiet
        self.splay = splay
        self.lead_after = lead_after
        """A change this long after the last batch was due is due at once; None: never."""
        self._fired = -math.inf
        self._leading = False
        self._rng = rng or random.Random()
        self._first: float | None = None
        self._last = 0.0
        self._extra = 0.0
        self._wake = trio.Event()
        self._batch = 0
        self.pokes = 0
        """Changes seen in total (for metrics and tests)."""

    @property
    def pending(self) -> bool:
        return self._first is not None

    def deadline(self) -> float | None:
        """When the pending batch is due (trio clock), or ``None``."""
        if self._first is None:
            return None
        if self._leading:
            due = self._first
        else:
            due = min(self._last + self.min_quiet, self._first + self.max_quiet)
        return due + self._extra

    def poke(self) -> None:
        now = trio.current_time()
        self.pokes += 1
        if self._first is None:
            self._first = now
            self._batch = 0
            self._leading = self.lead_after is not None and now - self._fired >= self.lead_after
            self._extra = self._rng.uniform(0, self.splay) if self.splay else 0.0
        self._batch += 1
        self._last = now
        self._wake.set()

    async def wait(self) -> int:
        """Wait for the pending batch to be due; return how many changes it coalesced."""
        while (deadline := self.deadline()) is None or trio.current_time() < deadline:
            if deadline is None:
                await self._wake.wait()
            else:
                with trio.move_on_at(deadline):
                    await self._wake.wait()
            if self._wake.is_set():
                self._wake = trio.Event()
        self._first = None
        self._fired = trio.current_time()
        return self._batch
