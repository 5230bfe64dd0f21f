"""Three real nodes (each with its nginx) against a real pebble, HTTP-01 validated for
real: one order per certificate, served by every node; an orderer killed mid-order is
taken over; renewal with no failed request; an unreachable CA backs off while the old
certificate keeps serving."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from node.certs import is_tmpfs, runtime_certs_dir
from node.statedir import StateDir
from tests.acme.harness import Prober, acme_mesh, key_pem_of, wait_for

pytestmark = [pytest.mark.pebble, pytest.mark.nginx, pytest.mark.slow]

NAMES = ["shop1.acme.test", "shop2.acme.test", "shop3.acme.test"]


def test_one_order_and_every_node_serves_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with acme_mesh(tmp_path, monkeypatch) as world:
        # Each name resolves to a different node: pebble validates through all three.
        for name, node in zip(NAMES, world.nodes, strict=True):
            world.dns.add_a(name, world.address(node))
        root = world.root_pem()
        started = time.monotonic()
        world.vhost("shop", NAMES, via=world.nodes[2])

        def issued() -> bool:
            return any(s["state"] == "valid" for s in world.subjects(world.nodes[0]))

        order_seconds = wait_for(issued, "the certificate to be issued")
        served = {}
        for node in world.nodes:
            for name in NAMES:
                served[(node.name, name)] = world.served_leaf(
                    node, name, root, f"{node.name} to serve {name} with pebble's certificate"
                )
        everywhere = time.monotonic() - started
        # One certificate, the same leaf on every node and name, from exactly one order.
        assert len({c.serial_number for c in served.values()}) == 1
        assert world.pebble.orders() == 1
        subject = world.subjects(world.nodes[1])[0]
        assert subject["state"] == "valid"
        assert subject["error"] == ""
        assert subject["names"] == sorted(NAMES)
        cert_id = subject["certificate"]
        # Installed keys: on tmpfs, readable by nginx's workers' group only; never on disk
        # in clear (the state directory holds only the sealed blob).
        for node in world.nodes:
            directory = runtime_certs_dir(StateDir.at(node.state).root, node.name)
            assert is_tmpfs(directory)
            info = os.stat(directory / f"{cert_id}.key")
            assert stat.S_IMODE(info.st_mode) == 0o640
            secret = key_pem_of(node, cert_id).splitlines()[2]  # key material, not the header
            for path in node.state.rglob("*"):
                if path.is_file():
                    assert secret not in path.read_bytes(), path
        status = world.nodes[0].api("GET", "/v1/status")["certificates"]
        assert cert_id in status["installed"]
        assert world.metric(world.nodes[0], "nxmesh_certificate_expiry_seconds") > 0
        print(f"\norder: {order_seconds:.2f} s; served by 3 nodes x 3 names: {everywhere:.2f} s")


def test_the_orderer_killed_mid_order_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The orderer pauses 6 s after placing a new order: the window in which it is killed.
    env = {"NXMESH_ACME_ORDER_PAUSE": "6"}
    with acme_mesh(tmp_path, monkeypatch, env=env) as world:
        names = ["kill1.acme.test", "kill2.acme.test"]
        victim = world.orderer_for(names)  # rendezvous hashing, as the nodes compute it
        survivors = [n for n in world.nodes if n is not victim]
        for name, node in zip(names, survivors, strict=True):
            world.dns.add_a(name, world.address(node))
        root = world.root_pem()
        world.vhost("kill", names, via=survivors[0])
        wait_for(lambda: world.pebble.orders() >= 1, "the order to be placed", 30)
        holders = {s["orderer"] for s in world.subjects(survivors[0])}
        assert holders == {victim.name}
        victim.kill9()  # mid-order: placed, not yet answered
        victim.reap_nginx()
        killed = time.monotonic()
        for node in survivors:
            for name in names:
                wait_for(
                    world.serving(node, name, root),
                    f"{node.name} to serve {name}",
                )
        takeover = time.monotonic() - killed
        orders = world.pebble.orders()
        # Usually the successor continues the same order (its URL is in the lease); a
        # second order happens only if the orderer died between placing the order and
        # the lease update reaching a peer. Never more (docs/certificates.md).
        assert 1 <= orders <= 2
        subject = world.subjects(survivors[1])[0]
        assert subject["state"] == "valid"
        continued = any(
            '"order-continued"' in n.log.read_text() or "acme order continued" in n.log.read_text()
            for n in survivors
        )
        assert continued == (orders == 1)
        # The killed node comes back: it installs the certificate from the documents
        # before its nginx starts, and nobody orders again.
        victim.start()
        for name in names:
            wait_for(
                world.serving(victim, name, root),
                f"the restarted {victim.name} to serve {name}",
            )
        assert world.pebble.orders() == orders
        print(f"\nkilled -> served by the survivors: {takeover:.2f} s; orders: {orders}")


def test_a_short_lived_certificate_is_renewed_everywhere_without_a_failed_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pebble issues 24 s certificates: renewal is due when a third remains (~15 s in).
    with acme_mesh(tmp_path, monkeypatch, validity=24) as world:
        names = ["renew1.acme.test", "renew2.acme.test", "renew3.acme.test"]
        for name, node in zip(names, world.nodes, strict=True):
            world.dns.add_a(name, world.address(node))
        root = world.root_pem()
        world.vhost("renew", names)
        first: dict[str, int] = {}
        for node in world.nodes:
            leaf = world.served_leaf(
                node, names[0], root, f"{node.name} to serve the first certificate"
            )
            first[node.name] = leaf.serial_number
        assert len(set(first.values())) == 1
        old = next(iter(first.values()))
        subject = world.subjects(world.nodes[0])[0]
        lifetime = 23.0
        assert subject["renew_at"] is not None
        assert subject["expires_in"] <= lifetime
        with Prober(world, names, root) as prober:
            for node in world.nodes:
                for name in names:
                    wait_for(
                        world.serving(node, name, root, not_serial=old),
                        f"{node.name} to serve the renewed certificate for {name}",
                        wait=45,
                    )
            time.sleep(1.0)  # keep probing across the last reload's old workers leaving
        assert prober.failures == [], prober.failures[:5]
        assert prober.ok > 50
        assert world.pebble.orders() == 2
        renewed = world.subjects(world.nodes[2])[0]
        assert renewed["state"] == "valid"
        assert renewed["certificate"] != subject["certificate"]
        print(f"\nrenewal: {prober.ok} HTTPS requests during it, none failed")


def test_an_unreachable_ca_backs_off_while_the_old_certificate_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with acme_mesh(tmp_path, monkeypatch) as world:
        names = ["outage1.acme.test", "outage2.acme.test", "outage3.acme.test"]
        for name, node in zip(names, world.nodes, strict=True):
            world.dns.add_a(name, world.address(node))
        old_root = world.root_pem()
        world.vhost("outage", names)
        served = {
            world.served_leaf(
                node, names[0], old_root, f"{node.name} to serve the certificate"
            ).serial_number
            for node in world.nodes
        }
        assert len(served) == 1
        old = served.pop()
        cert_name = world.nodes[0].api("GET", "/v1/workspaces/default/certificates")["items"][0][
            "name"
        ]
        world.pebble.stop()  # the CA is gone
        world.nodes[1].cli("cert", "renew", cert_name)
        seen: dict[int, tuple[float, float]] = {}

        def failing_twice() -> bool:
            subject = world.subjects(world.nodes[2])[0]
            if subject["state"] == "failed" and subject["retry_at"]:
                seen.setdefault(subject["failures"], (subject["last_attempt"], subject["retry_at"]))
            return len(seen) >= 2 and max(seen) >= 2

        wait_for(failing_twice, "two failed attempts", 30)
        first, second = seen[min(seen)], seen[max(seen)]
        assert second[1] - second[0] > first[1] - first[0]  # the backoff grows
        # Clear status everywhere: the API, /v1/status, the CLI, the metrics. (Between two
        # attempts the state is "failed"; during one, "ordering" with the last error.)
        subject = world.subjects(world.nodes[0])[0]
        assert subject["state"] in ("failed", "ordering")
        assert "cannot reach the ACME server: Connection refused" in subject["error"]
        assert subject["failures"] >= 2
        listing = world.nodes[1].cli("cert", "list").stdout
        assert "cannot reach the ACME server" in listing
        assert "failed" in listing or "ordering" in listing
        status = world.nodes[2].api("GET", "/v1/status")["certificates"]
        assert sum(status["acme"].values()) == 1
        assert "cannot reach the ACME server" in status["attention"][0]["error"]
        assert sum(world.metric(n, "nxmesh_acme_order_failures_total") for n in world.nodes) >= 2
        # The old certificate keeps serving on every node throughout.
        for node in world.nodes:
            for name in names:
                assert world.leaf(node, name, old_root).serial_number == old
        # The CA comes back (reset: new root, no accounts, no orders): the mesh registers
        # again and the renewal goes through at the next retry.
        world.pebble.start()
        new_root = world.root_pem()
        for node in world.nodes:
            wait_for(
                world.serving(node, names[0], new_root, not_serial=old),
                f"{node.name} to serve the renewed certificate",
                wait=45,
            )
        recovered = world.subjects(world.nodes[0])[0]
        assert recovered["state"] == "valid"
        assert recovered["error"] == ""
