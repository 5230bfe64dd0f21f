"""The console script: help, version, errors, and a start-up that imports little."""

from __future__ import annotations

import json
import subprocess
import sys

from node.version import __version__
from tests.support.paths import NXMESH, REPO


def nxmesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NXMESH), *args], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )


def test_help_exits_zero_and_lists_commands() -> None:
    out = nxmesh("--help")
    assert out.returncode == 0, out.stderr
    assert "no central master" in out.stdout
    assert "version" in out.stdout


def test_version_flag_prints_the_package_version() -> None:
    out = nxmesh("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"nxmesh {__version__}"


def test_version_command_json_names_the_required_parts() -> None:
    out = nxmesh("version", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["nxmesh"] == __version__
    for part in ("trio", "pycrdt", "textual", "acme"):
        assert info[part] != "missing"


def test_unknown_command_is_a_clear_error_without_traceback() -> None:
    out = nxmesh("no-such-command")
    assert out.returncode == 2
    assert "No such command 'no-such-command'" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_imports_no_heavy_module() -> None:
    probe = (
        "import sys\n"
        "from node.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "finally:\n"
        "    heavy = {'textual', 'fastapi', 'hypercorn', 'pycrdt', 'acme', 'jinja2', 'trio',\n"
        "             'pydantic', 'httpx', 'prometheus_client', 'nacl'}\n"
        "    print('LOADED', sorted(heavy & {m.split('.')[0] for m in sys.modules}),\n"
        "          file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stderr
