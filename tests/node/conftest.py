"""Fixtures for the node tests: a private nginx prefix, and applier/supervisor harnesses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from node.nginx import Applier, ApplierStatus, Metrics, NginxSettings, Supervisor
from tests.node.trees import WAIT, Fleet, make_prefix, remove_prefix, settings


@pytest.fixture
def prefix() -> Iterator[Path]:
    path = make_prefix()
    try:
        yield path
    finally:
        remove_prefix(path)


@dataclass
class Managed:
    applier: Applier
    supervisor: Supervisor
    metrics: Metrics
    settings: NginxSettings

    def master(self) -> int:
        pid = self.supervisor.master_pid()
        assert pid is not None, self.supervisor.status
        return pid

    def reloads(self, outcome: str = "ok") -> float:
        return self.metrics.value("nxmesh_nginx_reloads_total", outcome=outcome)

    async def wait(self, predicate: Callable[[ApplierStatus], bool]) -> ApplierStatus:
        with trio.fail_after(WAIT):
            return await self.applier.cell.wait_for(predicate)


@asynccontextmanager
async def managed(fleet: Fleet, prefix: Path, **overrides: object) -> AsyncIterator[Managed]:
    """Supervisor and applier running as the daemon runs them (supervisor first)."""
    s = settings(prefix, **overrides)
    metrics = Metrics()
    supervisor = Supervisor(s, metrics=metrics)
    applier = Applier(s, fleet.build, server=supervisor, metrics=metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await nursery.start(applier.run)
        yield Managed(applier, supervisor, metrics, s)
        nursery.cancel_scope.cancel()
