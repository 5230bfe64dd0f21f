"""Manual certificates on a real node with its nginx, driven by the CLI: uploaded, listed
with their expiry, served by SNI, replaced, refused when the key does not match."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from node.certs import runtime_certs_dir
from node.localmesh import LocalNode, backends, nxmesh
from node.statedir import StateDir
from tests.acme.harness import served_certificate, wait_for
from tests.render.pki import TestCA

pytestmark = [pytest.mark.nginx, pytest.mark.slow]


def test_upload_list_serve_and_replace_a_manual_certificate(tmp_path: Path) -> None:
    node = LocalNode("solo", tmp_path)
    ca = TestCA.create()
    root = ca.pem.decode()
    name = "manual.example.test"
    files = tmp_path / "pem"
    files.mkdir()

    def pair(tag: str) -> tuple[Path, Path]:
        crt, key = ca.issue([name])
        (files / f"{tag}.crt").write_bytes(crt)
        (files / f"{tag}.key").write_bytes(key)
        return files / f"{tag}.crt", files / f"{tag}.key"

    host, port = node.https.rsplit(":", 1)
    try:
        nxmesh("init", *node.identity_args(), "--preset", "local")
        node.start()
        crt, key = pair("one")
        out = node.cli("cert", "upload", "site", "--cert", str(crt), "--key", str(key)).stdout
        assert "uploaded certificate site" in out
        with backends(1) as (backend,):
            node.cli("upstream", "create", "app", "--server", f"127.0.0.1:{backend}")
            node.cli("vhost", "create", "site", "--server-name", name, "--upstream", "app",
                     "--entry-point", "http", "--entry-point", "https", "--tls", "manual",
                     "--certificate", "site")  # fmt: skip
            first = _first_serial(host, int(port), name, root)
            listing = node.cli("cert", "list").stdout
            assert "site" in listing
            assert "manual" in listing
            assert "1d 23h" in listing or "1d 22h" in listing  # pki issues 2-day certificates
            shown = node.cli("cert", "show", "site").stdout
            assert "installed_here  true" in shown
            # Replace the pair: the new certificate is served.
            crt2, key2 = pair("two")
            node.cli("cert", "upload", "site", "--cert", str(crt2), "--key", str(key2),
                     "--replace")  # fmt: skip
            wait_for(
                lambda: _serial(host, int(port), name, root) not in (None, first),
                "the replaced certificate to be served",
            )
            # A key that is not the certificate's is refused, in one line.
            bad = node.cli("cert", "upload", "other", "--cert", str(crt2), "--key", str(key),
                           check=False)  # fmt: skip
            assert bad.returncode != 0
            assert "key: the private key does not belong to the certificate" in bad.stderr
        # A clean stop removes the installed keys (they live only while nginx uses them).
        keys = runtime_certs_dir(StateDir.at(node.state).root, node.name)
        assert any(keys.glob("*.key"))
        assert node.stop() == 0
        assert not keys.exists()
    finally:
        node.stop()
        node.reap_nginx()
        directory = runtime_certs_dir(StateDir.at(node.state).root, node.name).parent
        if directory.name.startswith(node.name):
            shutil.rmtree(directory, ignore_errors=True)


def _first_serial(host: str, port: int, name: str, root: str) -> int:
    """The serial of the first handshake that verifies (waiting for one). Not "wait until
    one verifies, then look": while nginx reloads onto the certificate, the next
    handshake may still meet an old worker with the fallback."""
    seen: list[int] = []

    def verified() -> bool:
        serial = _serial(host, port, name, root)
        if serial is not None:
            seen.append(serial)
        return bool(seen)

    wait_for(verified, "the node's nginx to serve the uploaded certificate")
    return seen[0]


def _serial(host: str, port: int, name: str, root: str) -> int | None:
    try:
        return served_certificate(host, port, name, root).serial_number
    except OSError:
        return None
