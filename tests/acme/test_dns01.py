"""DNS-01 against a real pebble whose DNS is pebble-challtestsrv: the provider interface
with the challtestsrv provider, directly and through a whole daemon (render-only: DNS-01
needs no web server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from crdt.documents import MESH_DOCUMENT, MeshDocument
from crdt.schema import MeshSettings
from node.acme.challenges import make_provider
from node.acme.client import AcmeClient, AcmeError
from node.acme.keys import check_pair, generate_key, make_csr
from node.bootstrap import init_node
from node.config import NodeConfig
from node.daemon import Daemon
from node.ports import free_port
from node.statedir import StateDir
from tests.acme.pebble import ChallTestSrv, Pebble

pytestmark = [pytest.mark.pebble]


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    dns = ChallTestSrv(tmp_path)
    server = Pebble(tmp_path, free_port(), dns)  # no HTTP-01 here
    try:
        dns.start()
        server.start()
        yield server
    finally:
        server.stop()
        dns.stop()


def test_the_challtestsrv_provider_gets_a_certificate_issued(pebble: Pebble) -> None:
    client = AcmeClient(pebble.directory, generate_key(), ca_bundle=str(pebble.ca_file))
    client.account("ops@example.com")
    key = generate_key()
    names = ("dns01.acme.test", "www.dns01.acme.test")
    csr = make_csr(key, names)
    order = client.new_order(csr, "dns-01")
    assert {c.type for c in order.challenges} == {"dns-01"}
    provider = make_provider(f"challtestsrv:{pebble.dns.url}")
    for ch in order.challenges:
        assert ch.dns_name == f"_acme-challenge.{ch.domain}"
        provider.present(ch.dns_name, ch.dns_value)
    for ch in order.challenges:
        client.answer(ch)
    assert client.wait_ready(order.url, time.monotonic() + 30) in ("ready", "valid")
    chain = client.finalize(order.url, csr, time.monotonic() + 30)
    for ch in order.challenges:
        provider.cleanup(ch.dns_name, ch.dns_value)
    info = check_pair(chain, key)
    assert set(info.names) == set(names)
    assert pebble.orders() == 1


def test_a_missing_txt_record_fails_with_the_validation_error(pebble: Pebble) -> None:
    client = AcmeClient(pebble.directory, generate_key(), ca_bundle=str(pebble.ca_file))
    client.account(None)
    order = client.new_order(make_csr(generate_key(), ("nodns.acme.test",)), "dns-01")
    for ch in order.challenges:
        client.answer(ch)  # nothing published
    with pytest.raises(AcmeError, match=r"validation failed: nodns\.acme\.test: .*"):
        client.wait_ready(order.url, time.monotonic() + 30)


def _daemon(tmp_path: Path, pebble: Pebble, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("NXMESH_ACME_CA_BUNDLE", str(pebble.ca_file))
    monkeypatch.setenv("NXMESH_ACME_SETTLE", "0.1")
    monkeypatch.setenv("NXMESH_RUNTIME_DIR", str(tmp_path / "run"))
    state = StateDir.at(tmp_path / "node")
    config = NodeConfig.from_values(
        {"name": "solo", "listen": "127.0.0.1:0", "nginx_mode": "render-only", "preset": "local"}
    )
    init_node(state, config)
    return Daemon(state, config)


async def _dns01(api: httpx.AsyncClient, pebble: Pebble) -> None:
    patched = await api.patch(
        "/v1/workspaces/default",
        json={
            "acme_directory": pebble.directory,
            "acme_dns_provider": f"challtestsrv:{pebble.dns.url}",
        },
    )
    assert patched.status_code == 200, patched.text


async def _vhost(api: httpx.AsyncClient, name: str) -> None:
    vhost = {
        "name": name,
        "server_names": [f"{name}.dns01.acme.test"],
        "entry_points": ["http", "https"],
        "tls": {"mode": "acme"},
        "locations": [{"path": "/", "action": "return", "status": 200}],
    }
    created = await api.post("/v1/workspaces/default/vhosts", json=vhost)
    assert created.status_code == 201, created.text


async def _state(api: httpx.AsyncClient, name: str, *states: str) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            items = (await api.get("/v1/workspaces/default/acme")).json()["items"]
            for item in items:
                if item["names"] == [f"{name}.dns01.acme.test"] and item["state"] in states:
                    return dict(item)
            await trio.sleep(0.1)


async def test_a_daemon_orders_through_dns01(
    pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path, pebble, monkeypatch)
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        watch = daemon.events.open()
        async with httpx.AsyncClient(transport=transport, base_url="http://nxmesh") as api:
            await _dns01(api, pebble)
            await _vhost(api, "daemon")
            item = await _state(api, "daemon", "valid", "failed")
            assert item["state"] == "valid", item["error"]
            cert_id = item["certificate"]
            with trio.fail_after(10):  # the next pass installs it
                while True:
                    url = f"/v1/workspaces/default/certificates/{cert_id}/status"
                    status = (await api.get(url)).json()
                    if status["installed"]:
                        break
                    await trio.sleep(0.05)
            assert status["install_error"] is None
            assert list((tmp_path / "run").rglob(f"{cert_id}.key"))
            # The watch stream told the story.
            seen = []
            while True:
                with trio.move_on_after(0.05) as idle:
                    event = await watch.receive()
                if idle.cancelled_caught:
                    break
                if event["type"] == "certificate":
                    seen.append(event["event"])
            for step in ("lease-taken", "account-registered", "order-placed", "issued",
                         "installed"):  # fmt: skip
                assert step in seen, seen
        await daemon.shutdown()
    assert pebble.orders() == 1
    # Installed under the runtime directory, removed at the clean stop.
    assert not any((tmp_path / "run").rglob("*.key"))


async def test_the_mesh_wide_order_cap_holds_orders_back(
    pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path, pebble, monkeypatch)
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        # One order per hour for the whole mesh (a mesh setting; no API writes it yet).
        _, update = MeshDocument.edit(
            daemon.replica.mesh_doc,
            lambda d: d.patch(MeshSettings, "settings", {"acme_order_rate": 1}),
        )
        assert update is not None
        daemon.published(MESH_DOCUMENT, update)
        async with httpx.AsyncClient(transport=transport, base_url="http://nxmesh") as api:
            await _dns01(api, pebble)
            await _vhost(api, "first")
            assert (await _state(api, "first", "valid", "failed"))["state"] == "valid"
            await _vhost(api, "second")
            held = await _state(api, "second", "rate-limited", "valid", "failed")
        await daemon.shutdown()
    assert held["state"] == "rate-limited"
    assert "mesh-wide order cap reached: 1 orders in the last hour (cap 1)" in held["error"]
    assert held["failures"] == 0  # not a failure: no backoff growth
    assert held["retry_in"] > 3000  # when the first order leaves the hour
    assert pebble.orders() == 1
