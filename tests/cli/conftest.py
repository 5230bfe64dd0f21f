"""The real ``nxmesh`` console script, run as a child process against a served API."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import Served, served_in_thread
from tests.support.paths import NXMESH, REPO


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_nxmesh(state_dir: Path | None, *args: str, **env: str) -> Result:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NXMESH_")}
    if state_dir is not None:
        environ["NXMESH_STATE_DIR"] = str(state_dir)
    environ.update(env)
    done = subprocess.run(
        [str(NXMESH), *args],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Node:
    """A served API and the CLI pointed at it through NXMESH_STATE_DIR."""

    state_dir: Path
    served: Served

    def __call__(self, *args: str, **env: str) -> Result:
        return run_nxmesh(self.state_dir, *args, **env)

    def ok(self, *args: str, **env: str) -> Result:
        result = self(*args, **env)
        assert result.code == 0, (args, result.err)
        assert result.err == "", result.err
        return result


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with served_in_thread(tmp_path) as served:
        yield Node(tmp_path, served)


@pytest.fixture
def seeded(node: Node) -> Node:
    """An organization 'acme' and its workspace 'default'."""
    node.ok("org", "create", "acme")
    node.ok("workspace", "create", "default")
    return node
