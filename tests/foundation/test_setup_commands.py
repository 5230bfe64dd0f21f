"""The README's two set-up commands, and CI reading its command from the README."""

from __future__ import annotations

import re
import subprocess

from tests.support.paths import REPO


def readme_command(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "readme-command"), name],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_readme_has_exactly_two_setup_commands() -> None:
    tags = re.findall(r"<!-- setup-command: (\w+) -->", (REPO / "README.md").read_text())
    assert tags == ["demo", "test"]


def test_each_setup_command_is_an_executable_script_in_the_repo() -> None:
    for name in ("demo", "test"):
        out = readme_command(name)
        assert out.returncode == 0, out.stderr
        script = REPO / out.stdout.strip()
        assert script.is_file()
        assert script.stat().st_mode & 0o111


def test_an_unknown_command_name_is_refused() -> None:
    out = readme_command("deploy")
    assert out.returncode == 1
    assert "no 'deploy' set-up command" in out.stderr


def test_ci_runs_the_readme_test_command_without_a_copy_of_it() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/readme-command test" in ci
    assert readme_command("test").stdout.strip() not in ci.replace("readme-command test", "")
