"""Failures end as one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.conftest import Node, Result, run_nxmesh


def one_line(result: Result, code: int = 1) -> str:
    assert result.code == code, result
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def test_no_socket(tmp_path: Path) -> None:
    line = one_line(run_nxmesh(tmp_path / "nowhere", "upstream", "list"))
    assert f"no daemon socket at {tmp_path / 'nowhere' / 'api.sock'}" in line


def test_daemon_not_running(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "api.sock"))  # left behind by a daemon that died
    stale.close()
    line = one_line(run_nxmesh(tmp_path, "vhost", "list"))
    assert "the daemon is not running" in line


def test_api_refusals_give_detail_and_fields(seeded: Node) -> None:
    line = one_line(seeded("upstream", "create", "bad", "--server", "nope"))
    assert line.startswith("Error: invalid input: servers[0].address: must be host:port")
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")
    line = one_line(seeded("upstream", "create", "app", "--server", "10.0.0.2:80"))
    assert "the name 'app' is taken by upstream" in line
    line = one_line(
        seeded("vhost", "create", "shop", "--server-name", "x.test", "--upstream", "ghost")
    )
    assert "no upstream is named 'ghost' or has that id" in line
    line = one_line(
        seeded("vhost", "create", "shop", "--server-name", "bad name", "--upstream", "app")
    )
    assert "server_names[0]" in line
    seeded.ok("vhost", "create", "shop", "--server-name", "shop.test", "--upstream", "app")
    line = one_line(seeded("upstream", "delete", "app"))
    assert "is still used by virtual host 'shop'" in line
    line = one_line(seeded("vhost", "show", "nothing"))
    assert "no virtual host is named 'nothing'" in line


def test_no_workspace_yet(node: Node) -> None:
    line = one_line(node("upstream", "create", "app", "--server", "10.0.0.1:80"))
    assert "there is no workspace yet" in line
    line = one_line(node("workspace", "create", "default"))
    assert "0 organizations: create one with `nxmesh org create NAME`" in line


def test_usage_errors_are_one_line_too(seeded: Node) -> None:
    line = one_line(seeded("upstream", "create", "app", "--server", "10.0.0.1:80,weight=x"), 2)
    assert "'weight=x' is not one of" in line
    assert "see 'nxmesh upstream create --help'" in line
    line = one_line(seeded("upstream", "update", "app"), 1)
    assert "no upstream is named 'app'" in line
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")
    line = one_line(seeded("upstream", "update", "app"), 2)
    assert "nothing to change" in line


def test_a_taken_mesh_port_is_one_clear_line(tmp_path: Path) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        state = tmp_path / "n1"
        listen = f"127.0.0.1:{port}"
        made = run_nxmesh(None, "init", "--state-dir", str(state), "--name", "n1",
                          "--listen", listen, "--nginx", "render-only")  # fmt: skip
        assert made.code == 0, made.err
        result = run_nxmesh(state, "run")
    finally:
        taken.close()
    assert result.code == 1, result
    assert "Traceback" not in result.err
    expected = f"Error: cannot listen on {listen}: Address already in use"
    assert result.err.splitlines()[-1] == expected
