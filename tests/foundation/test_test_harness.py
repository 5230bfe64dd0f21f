"""The harness itself: trio and Textual tests in one suite; a run with no test fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from textual.app import App, ComposeResult
from textual.widgets import Input

from tests.support.asyncio_run import run_asyncio
from tests.support.paths import REPO


async def test_trio_is_the_default_mode() -> None:
    # pytest-trio runs this coroutine; a trio-only API proves which loop it is on.
    with trio.fail_after(5):
        await trio.lowlevel.checkpoint()
    assert trio.lowlevel.current_root_task() is not None


class _EchoApp(App[str]):
    def compose(self) -> ComposeResult:
        yield Input(id="name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.exit(event.value)


def test_textual_runs_in_its_own_asyncio_loop() -> None:
    async def drive() -> str | None:
        app = _EchoApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press(*"edge-1", "enter")
        return app.return_value

    assert run_asyncio(drive()) == "edge-1"


def run_pytest(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "tests.run_pytest", "-c", str(tmp_path / "pytest.ini"),
         "-p", "no:trio", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("ci", [False, True])
def test_a_run_with_no_test_fails(tmp_path: Path, ci: bool) -> None:
    out = run_pytest(tmp_path, ci=ci)
    assert out.returncode != 0


def test_a_run_where_every_test_skipped_fails(tmp_path: Path) -> None:
    (tmp_path / "test_skip.py").write_text(
        "import pytest\n\ndef test_x():\n    pytest.skip('not here')\n"
    )
    out = run_pytest(tmp_path, ci=False)
    assert out.returncode == 5
    assert "no test ran" in out.stderr


def test_a_skip_fails_under_ci_but_not_locally(tmp_path: Path) -> None:
    (tmp_path / "test_mixed.py").write_text(
        "import pytest\n\ndef test_ok():\n    pass\n\ndef test_x():\n    pytest.skip('no')\n"
    )
    assert run_pytest(tmp_path, ci=False).returncode == 0
    out = run_pytest(tmp_path, ci=True)
    assert out.returncode == 6
    assert "skipped under CI" in out.stderr


def test_a_failing_test_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_fail.py").write_text("def test_x():\n    assert 1 == 2\n")
    assert run_pytest(tmp_path, ci=False).returncode == 1
