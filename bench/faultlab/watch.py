"""Member events from every node's watch stream (``GET /v1/watch``), one thread per node.

A stream ends when its daemon stops, is killed or stalls past the read timeout (the daemon
sends a heartbeat every 15 s); the thread then reconnects, until told to stop. Events
carry the observer's own timestamp (``at``), so a stalled observer's late events keep
their true time.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time

import httpx

from bench.faultlab.model import MemberEvent
from bench.faultlab.nodes import LabNode

__all__ = ["Watchers"]

MAX_RUN = 6 * 3600.0
READ_TIMEOUT = 20.0


class Watchers:
    """Collects :class:`MemberEvent` from the nodes given to :meth:`watch`."""

    def __init__(self) -> None:
        self.events: list[MemberEvent] = []
        self.connects: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._clients: dict[str, httpx.Client] = {}

    def watch(self, node: LabNode) -> None:
        if node.name in self._threads:
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(node, stop), name=f"faultlab-watch-{node.name}", daemon=True
        )
        self._stops[node.name] = stop
        self._threads[node.name] = thread
        thread.start()

    def forget(self, name: str) -> None:
        stop = self._stops.pop(name, None)
        if stop is not None:
            stop.set()
        self._close_client(name)
        thread = self._threads.pop(name, None)
        if thread is not None:
            thread.join(timeout=2)

    def close(self) -> None:
        for name in list(self._threads):
            self.forget(name)

    def snapshot(self) -> list[MemberEvent]:
        with self._lock:
            return list(self.events)

    def _close_client(self, name: str) -> None:
        with self._lock:
            client = self._clients.pop(name, None)
        if client is not None:
            # Closing under a reading thread ends its read; best effort.
            with contextlib.suppress(Exception):
                client.close()

    def _run(self, node: LabNode, stop: threading.Event) -> None:
        deadline = time.monotonic() + MAX_RUN
        while not stop.is_set() and time.monotonic() < deadline:
            transport = httpx.HTTPTransport(uds=str(node.socket))
            timeout = httpx.Timeout(5.0, read=READ_TIMEOUT)
            client = httpx.Client(transport=transport, base_url="http://nxmesh", timeout=timeout)
            with self._lock:
                self._clients[node.name] = client
            try:
                with client.stream("GET", "/v1/watch") as response:
                    if response.status_code != 200:
                        stop.wait(0.5)
                        continue
                    with self._lock:
                        self.connects[node.name] = self.connects.get(node.name, 0) + 1
                    for line in response.iter_lines():
                        if stop.is_set():
                            return
                        self._take(node.name, line)
            except (httpx.HTTPError, OSError, RuntimeError, ValueError):
                pass
            finally:
                self._close_client(node.name)
            stop.wait(0.5)

    def _take(self, observer: str, line: str) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict) or event.get("type") != "member" or "event" not in event:
            return
        record = MemberEvent(
            observer,
            str(event.get("node", "")),
            str(event["event"]),
            float(event.get("at", time.time())),
        )
        with self._lock:
            self.events.append(record)
