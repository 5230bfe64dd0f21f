"""Debian's pebble (a real ACME server, validation on) and pebble-challtestsrv (its DNS).

``Pebble.start`` generates pebble's own TLS certificate (Debian ships none), starts
challtestsrv as pebble's DNS server (A records point test names at the nodes; TXT records
for DNS-01) and pebble on free ports. ``PEBBLE_VA_ALWAYS_VALID`` is never set: every
challenge is validated for real, over HTTP on ``http_port`` of the address a name
resolves to. Orders are counted from pebble's own log ("Added order").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.ports import free_port, free_udp_tcp_port

__all__ = ["ChallTestSrv", "Pebble"]

_WAIT = 15.0


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    import socket

    deadline = time.monotonic() + _WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start:\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {_WAIT:g} s")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class ChallTestSrv:
    """pebble-challtestsrv serving DNS only (its HTTP/TLS challenge servers are off)."""

    root: Path
    dns_port: int = field(default_factory=free_udp_tcp_port)
    management_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        log = self.root / "challtestsrv.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    "pebble-challtestsrv",
                    "-dns01", f"127.0.0.1:{self.dns_port}",
                    "-management", f"127.0.0.1:{self.management_port}",
                    "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                ],
                stdout=out,
                stderr=out,
            )  # fmt: skip
        _wait_listening(self.management_port, self.process, "pebble-challtestsrv", log)

    def add_a(self, host: str, address: str) -> None:
        r = httpx.post(f"{self.url}/add-a", json={"host": host, "addresses": [address]})
        r.raise_for_status()

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


@dataclass
class Pebble:
    """One pebble: directory at :attr:`directory`, management at :attr:`management`."""

    root: Path
    http_port: int
    """Where pebble's VA sends HTTP-01 requests (the nodes' http entry-point port)."""
    dns: ChallTestSrv
    validity: int | None = None
    """Certificate lifetime in seconds (pebble's ``certificateValidityPeriod``)."""
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_file(self) -> Path:
        """pebble's own TLS certificate (what ACME clients must trust to reach it)."""
        return self.root / "pebble-tls.crt"

    @property
    def log(self) -> Path:
        return self.root / "pebble.log"

    def _tls(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test server")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.root / "pebble-tls.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def start(self) -> None:
        """Start (or restart on the same ports: a restarted pebble forgets every account,
        order and root)."""
        if not self.ca_file.exists():
            self._tls()
        config: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.ca_file),
            "privateKey": str(self.root / "pebble-tls.key"),
            "httpPort": self.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        path = self.root / "pebble-config.json"
        path.write_text(json.dumps({"pebble": config}))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")},
            "PEBBLE_VA_NOSLEEP": "1",  # no artificial delay before validating
            "PEBBLE_AUTHZREUSE": "0",  # every order is validated afresh
            "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce (the client retries once)
        }
        assert "PEBBLE_VA_ALWAYS_VALID" not in env
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                ["pebble", "-config", str(path), "-dnsserver", f"127.0.0.1:{self.dns.dns_port}"],
                stdout=out,
                stderr=out,
                env=env,
            )
        _wait_listening(self.port, self.process, "pebble", self.log)
        _wait_listening(self.management_port, self.process, "pebble management", self.log)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def root_pem(self) -> str:
        """The root that issues this run's certificates (new at every start)."""
        r = httpx.get(f"https://127.0.0.1:{self.management_port}/roots/0", verify=False)
        r.raise_for_status()
        return r.text

    def orders(self) -> int:
        """Orders pebble created since its log began (every start appends)."""
        return self.log.read_text().count("Added order")
