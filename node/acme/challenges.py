"""Challenges: HTTP-01 files served by every node, and DNS-01 providers.

HTTP-01 across the mesh
    The orderer writes token -> key authorization into the workspace document
    (``acme_challenges``). Every serving node mirrors those records into its challenge
    directory - the directory render/ serves at ``/.well-known/acme-challenge/`` on every
    plain-HTTP server, so no reload is needed - writing each file atomically (temporary
    file, then rename) and removing files whose record is gone. It then reports the
    tokens it serves in its membership metadata as short hashes (:func:`token_hash`), so
    the orderer answers the challenge only once the nodes the CA may reach can answer.

DNS-01
    :class:`DnsProvider` is the interface: ``present`` a TXT record, ``cleanup`` after.
    Providers are named in the settings as ``NAME[:ARGUMENT]`` (non-secret argument);
    :data:`PROVIDERS` maps names to factories. ``challtestsrv`` drives pebble's test DNS
    server through its management API (``challtestsrv:http://127.0.0.1:8055``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import httpx

from node.acme.records import valid_token

__all__ = [
    "MAX_REPORTED",
    "PROVIDERS",
    "ChallTestSrv",
    "ChallengeDir",
    "DnsProvider",
    "ProviderError",
    "make_provider",
    "token_hash",
]

MAX_REPORTED = 16
"""Token hashes a node reports in its metadata (the newest)."""
HASH_BYTES = 4


def token_hash(token: str) -> bytes:
    return hashlib.blake2b(token.encode(), digest_size=HASH_BYTES).digest()


class ChallengeDir:
    """The HTTP-01 files of this node (one directory, shared by every workspace)."""

    def __init__(self, directory: Path, group: int | None = None) -> None:
        """``group``: the nginx workers' group when running as root (files must be
        readable by the workers), else None."""
        self.directory = directory
        self.group = group
        self.served: dict[str, str] = {}
        """token -> key authorization currently on disk."""
        self._order: list[str] = []
        """Tokens in the order they were written (newest last)."""
        self.errors: dict[str, str] = {}

    def prepare(self) -> None:
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        if self.group is not None:
            os.chown(self.directory, 0, self.group)
            os.chmod(self.directory, 0o750)
        for path in self.directory.iterdir():  # leftovers of an earlier run
            if path.is_file():
                with contextlib.suppress(OSError):
                    path.unlink()

    def remove(self) -> None:
        """Delete the directory (at a clean stop)."""
        for path in self.directory.glob("*"):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def sync(self, wanted: Mapping[str, str]) -> bool:
        """Serve exactly ``wanted`` (token -> key authorization); True when anything
        changed. Invalid tokens are skipped (and reported in :attr:`errors`)."""
        changed = False
        self.errors = {}
        for token, key_auth in sorted(wanted.items()):
            if not valid_token(token, key_auth):
                self.errors[token[:40]] = "not a valid HTTP-01 token/key authorization"
                continue
            if self.served.get(token) == key_auth:
                continue
            try:
                self._write(token, key_auth.encode())
            except OSError as exc:
                self.errors[token] = f"cannot write the challenge file: {exc.strerror or exc}"
                continue
            self.served[token] = key_auth
            if token in self._order:
                self._order.remove(token)
            self._order.append(token)
            changed = True
        for token in [t for t in self.served if t not in wanted]:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / token).unlink()
            del self.served[token]
            self._order.remove(token)
            changed = True
        return changed

    def _write(self, token: str, data: bytes) -> None:
        path = self.directory / token
        tmp = self.directory / f".{token}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            if self.group is not None:
                os.fchown(fd, 0, self.group)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def reported(self) -> tuple[bytes, ...]:
        """Hashes of the newest tokens served (for the membership metadata)."""
        return tuple(token_hash(t) for t in reversed(self._order[-MAX_REPORTED:]))


# ---------------------------------------------------------------------------- DNS-01


class ProviderError(Exception):
    """A DNS provider failed; the message is one line."""


class DnsProvider(Protocol):
    """Publishes DNS-01 TXT records. Synchronous (run in a worker thread)."""

    propagation: float
    """Seconds to wait after ``present`` before asking the CA to validate."""

    def present(self, fqdn: str, value: str) -> None:
        """Add the TXT record ``fqdn`` (``_acme-challenge.<domain>.``) = ``value``."""
        ...

    def cleanup(self, fqdn: str, value: str) -> None:
        """Remove what :meth:`present` added (errors are logged, not raised)."""
        ...


class ChallTestSrv:
    """pebble-challtestsrv's management API (``/set-txt``, ``/clear-txt``)."""

    propagation = 0.0

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ProviderError(f"challtestsrv needs its management URL, not {url!r}")
        self.url = url.rstrip("/")

    def _post(self, path: str, body: dict[str, str]) -> None:
        try:
            response = httpx.post(f"{self.url}{path}", json=body, timeout=10)
        except httpx.HTTPError as exc:
            raise ProviderError(f"challtestsrv {path}: {exc}") from None
        if response.status_code >= 400:
            raise ProviderError(f"challtestsrv {path}: HTTP {response.status_code}")

    def present(self, fqdn: str, value: str) -> None:
        self._post("/set-txt", {"host": _dotted(fqdn), "value": value})

    def cleanup(self, fqdn: str, value: str) -> None:
        self._post("/clear-txt", {"host": _dotted(fqdn)})


def _dotted(name: str) -> str:
    return name if name.endswith(".") else name + "."


PROVIDERS: dict[str, Callable[[str], DnsProvider]] = {"challtestsrv": ChallTestSrv}
"""DNS-01 providers by name; the factory gets the argument after ``NAME:``."""


def make_provider(spec: str) -> DnsProvider:
    name, _, argument = spec.partition(":")
    factory = PROVIDERS.get(name)
    if factory is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ProviderError(f"unknown DNS-01 provider {name!r} (known: {known})")
    return factory(argument)
