"""``nxmesh tui`` is registered, documented, and costs ``nxmesh --help`` nothing: the
console (Textual, httpx) is imported only in its own process."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_tui_without_importing_the_console() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "node.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "tui" in result.stdout.split()
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert not {m for m in imported if m.split(".")[0] in ("tui", "textual")}


def test_tui_help_names_the_state_dir_option() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "node.cli", "tui", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--state-dir" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert not {m for m in imported if m.split(".")[0] in ("tui", "textual", "httpx")}
