"""Run an async job at most once at a time; requests made while it runs make it run once
more afterwards, so bursts of watch events cost one re-read, not one each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.dom import DOMNode

__all__ = ["Coalescer"]


class Coalescer:
    """``request()`` as often as you like; ``job`` runs in a worker of ``owner``."""

    def __init__(self, owner: DOMNode, job: Callable[[], Awaitable[None]], name: str) -> None:
        self._owner = owner
        self._job = job
        self._name = name
        self._dirty = False
        self._running = False

    @property
    def busy(self) -> bool:
        return self._running or self._dirty

    def request(self) -> None:
        self._dirty = True
        if not self._running:
            self._running = True
            self._owner.run_worker(self._loop(), group=self._name, exit_on_error=False)

    async def _loop(self) -> None:
        try:
            while self._dirty:
                self._dirty = False
                await self._job()
        finally:
            self._running = False
