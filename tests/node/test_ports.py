"""node.ports: a port picked for one node is not picked again for the next."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator
from types import TracebackType

import pytest

from node import ports


class _Offering:
    """A socket whose kernel offers the ports of ``offers`` in turn."""

    def __init__(self, offers: Iterator[int]) -> None:
        self.offers = offers
        self.port = 0

    def bind(self, address: tuple[str, int]) -> None:
        self.port = address[1] or next(self.offers)

    def getsockname(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def __enter__(self) -> _Offering:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


def test_a_port_offered_again_before_anyone_bound_it_is_not_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ports, "_recent", deque(maxlen=ports._RECENT))
    monkeypatch.setattr(ports, "_recent_set", set())
    offers = iter([41000, 41000, 41001, 41001, 41000, 41002])
    monkeypatch.setattr(socket, "socket", lambda *_a: _Offering(offers))
    assert [ports.free_port(), ports.free_port(), ports.free_udp_tcp_port()] == [
        41000,
        41001,
        41002,
    ]


def test_real_ports_are_distinct_and_free() -> None:
    picked = [ports.free_port() for _ in range(50)] + [ports.free_udp_tcp_port() for _ in range(50)]
    assert len(set(picked)) == len(picked)
    for port in picked[-5:]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
