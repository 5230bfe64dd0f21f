"""The daemon in this process (render-only nginx): it starts every service, serves the
API and metrics, publishes its status in its membership metadata, restarts a crashing
service with backoff and stops on one that keeps crashing, and stops cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from node.bootstrap import init_node
from node.config import NodeConfig
from node.daemon import Daemon, DaemonError
from node.localmesh import nxmesh
from node.meta import NodeMeta
from node.statedir import StateDir


def _daemon(tmp_path: Path) -> Daemon:
    state = StateDir.at(tmp_path / "node")
    config = NodeConfig.from_values(
        {"name": "solo", "listen": "127.0.0.1:0", "nginx_mode": "render-only", "preset": "local"}
    )
    init_node(state, config)
    return Daemon(state, config)


async def _api(daemon: Daemon, method: str, path: str, body: object = None) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://nxmesh") as client:
        return await client.request(method, path, json=body)


async def test_a_daemon_serves_applies_publishes_and_stops(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        status = (await _api(daemon, "GET", "/v1/status")).json()
        assert status["node"] == "solo"
        assert status["members"] == {"alive": 1}
        created = await _api(
            daemon,
            "POST",
            "/v1/workspaces/default/upstreams",
            {"name": "app", "servers": [{"address": "127.0.0.1:9"}]},
        )
        assert created.status_code == 201, created.text
        # The applier renders it and the node publishes the state it applied.
        wanted = daemon.replica.desired().digest
        with trio.fail_after(15):
            while True:
                meta = NodeMeta.unpack(daemon.node.core.meta)
                if meta is not None and meta.state == wanted:
                    break
                await trio.sleep(0.05)
        assert meta.name == "solo"
        assert meta.apply == "ok"
        assert meta.revision
        assert (daemon.state.nginx_prefix / "conf" / "nginx.conf").exists()
        # Metrics: mesh, state plane and applier series on the loopback endpoint.
        assert daemon.metrics_addr is not None
        host, port = daemon.metrics_addr
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://{host}:{port}/metrics")).text
        for series in ("nxmesh_build_info", "nxmesh_mesh_members", "nxmesh_state_local_edits"):
            assert series in text
        assert 'nxmesh_mesh_members{state="alive"} 1.0' in text
        await daemon.shutdown()
    assert not daemon.socket_path.exists()


async def test_a_crashing_service_is_restarted_then_stops_the_daemon(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = _daemon(tmp_path)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError(f"crash {runs}")

    async def recovers() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("transient")

    start = trio.current_time()
    await daemon._supervised("recovers", recovers)
    assert trio.current_time() - start == pytest.approx(0.5 + 1.0)  # backoff doubles
    assert runs == 3
    runs = 0
    with pytest.raises(DaemonError, match="'flaky' crashed 5 times"):
        await daemon._supervised("flaky", flaky)
    assert runs == 5
    daemon.store.close()


def test_cli_join_refuses_a_bad_token_in_one_line(tmp_path: Path) -> None:
    result = nxmesh(
        "join", "nxm1.not-a-token", "--state-dir", str(tmp_path / "n"), "--name", "web-1",
        "--listen", "127.0.0.1:7946", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "join token" in lines[0]
    assert "Traceback" not in result.stderr


def test_status_json_names_the_node(tmp_path: Path) -> None:
    state = tmp_path / "n"
    nxmesh("init", "--state-dir", str(state), "--name", "web-1", "--listen", "127.0.0.1:0",
           "--nginx", "render-only")  # fmt: skip
    result = nxmesh("status", "--json", "--state-dir", str(state), check=False)
    assert result.returncode == 1  # not running: one line, no traceback
    assert "not running" in result.stderr or "no daemon" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    config = (state / "config.toml").read_text()
    assert 'name = "web-1"' in config
    assert json.dumps("render-only") in config
