"""The client workload: a few threads making edits through the API of random nodes while
the faults run, recording every attempt and every value a node answered with.

Each edit first reads the entity on the node it is about to write to (what that node
holds - an *observation*), then writes one field (PATCH), two fields (PUT of an upstream)
or creates a virtual host (POST), each with a value no other write uses. The client knows
nothing of the faults: it picks nodes at random, paused, killed or cut-off ones included,
and records what it gets: ``acked`` (2xx), ``refused`` (an error status, or no connection
at all) or ``unknown`` (a timeout or a connection lost after sending: it may have been
written).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.faultlab.model import FIELDS, WORKSPACE, Edit, Observation, server_token, token_of
from bench.faultlab.model import value_for as _value
from bench.faultlab.nodes import ApiAnswer, LabNode

__all__ = ["Workload"]

MAX_RUN = 6 * 3600.0
"""No thread runs longer than this, whatever happens to the harness."""


def _path(kind: str, entity: str = "") -> str:
    base = f"/v1/workspaces/{WORKSPACE}/{kind}"
    return f"{base}/{entity}" if entity else base


class Workload:
    """``threads`` clients over the nodes ``roster()`` returns; paused until :meth:`resume`."""

    def __init__(
        self,
        roster: Callable[[], list[LabNode]],
        entities: dict[str, dict[str, str]],
        *,
        seed: int,
        threads: int = 3,
        timeout: float = 4.0,
        think: tuple[float, float] = (0.05, 0.25),
        create_share: float = 0.08,
        put_share: float = 0.1,
    ) -> None:
        """``entities``: kind -> {id: name} of the entities to edit."""
        self.roster = roster
        self.entities = entities
        self.seed = seed
        self.timeout = timeout
        self.think = think
        self.create_share = create_share
        self.put_share = put_share
        self.edits: list[Edit] = []
        self.observations: list[Observation] = []
        self.created: dict[str, str] = {}
        """Name -> id of every virtual host a create made (acknowledged ones)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = False
        self._busy = 0
        self._stop = False
        self._seq = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"faultlab-client-{i}", daemon=True)
            for i in range(threads)
        ]

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def resume(self) -> None:
        with self._cond:
            self._active = True
            self._cond.notify_all()

    def pause(self, wait: float = 15.0) -> bool:
        """Stop starting edits; wait for those under way (True when none is left)."""
        deadline = time.monotonic() + wait
        with self._cond:
            self._active = False
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._active = False
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=self.timeout * 3 + 1)

    def next_seq(self) -> int:
        with self._lock:
            return next(self._seq)

    def record(self, edit: Edit) -> None:
        with self._lock:
            self.edits.append(edit)

    def observe(self, node: str, at: float, kind: str, entity: str, body: Any) -> None:
        """Record every edited field of an entity a node answered with."""
        if not isinstance(body, dict):
            return
        rows = [
            Observation(node, at, kind, entity, name, token_of(kind, name, body.get(name)))
            for name in FIELDS[kind]
        ]
        with self._lock:
            self.observations.extend(rows)

    # ------------------------------------------------------------------ the clients

    def _loop(self, index: int) -> None:
        rng = random.Random(self.seed * 1009 + index)
        deadline = time.monotonic() + MAX_RUN
        while time.monotonic() < deadline:
            with self._cond:
                while not self._active and not self._stop and time.monotonic() < deadline:
                    self._cond.wait(1.0)
                if self._stop or not self._active:
                    return
                self._busy += 1
            try:
                self._one(rng)
            except Exception as exc:  # a harness bug must not stop the workload silently
                self.record(
                    Edit(0, "?", "error", "", "", {}, time.time(), outcome="error", error=repr(exc))
                )
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
            time.sleep(rng.uniform(*self.think))

    def _one(self, rng: random.Random) -> None:
        nodes = self.roster()
        if not nodes:
            return
        node = rng.choice(nodes)
        roll = rng.random()
        if roll < self.create_share:
            self._create(node)
        elif roll < self.create_share + self.put_share:
            self._put_upstream(node, rng)
        else:
            kind = rng.choice(("vhosts", "vhosts", "upstreams"))
            entity = rng.choice(sorted(self.entities[kind]))
            self._patch(node, kind, entity, rng.choice(FIELDS[kind]))

    def _read(self, node: LabNode, kind: str, entity: str) -> dict[str, Any] | None:
        answer = node.api("GET", _path(kind, entity), timeout=self.timeout)
        if answer.ok and isinstance(answer.body, dict):
            self.observe(node.name, time.time(), kind, entity, answer.body)
            return answer.body
        return None

    def _token(self, seq: int, kind: str, name: str) -> str:
        if kind == "upstreams" and name == "servers":
            return server_token(seq)
        return f"t{seq:07d}{name[0]}"

    def _finish(self, edit: Edit, answer: ApiAnswer, node: LabNode) -> None:
        edit.end = time.time()
        edit.status = answer.status
        if answer.ok:
            edit.outcome = "acked"
            if edit.op != "create":
                self.observe(node.name, edit.end, edit.kind, edit.entity, answer.body)
        elif answer.status or not answer.maybe_done:
            edit.outcome = "refused"
            edit.error = answer.error or str(answer.body)[:300]
        else:
            edit.outcome = "unknown"
            edit.error = answer.error
        self.record(edit)

    def _patch(self, node: LabNode, kind: str, entity: str, name: str) -> None:
        self._read(node, kind, entity)
        seq = self.next_seq()
        token = self._token(seq, kind, name)
        edit = Edit(seq, node.name, "patch", kind, entity, {name: token}, time.time())
        body = {name: _value(kind, name, token)}
        answer = node.api("PATCH", _path(kind, entity), body, timeout=self.timeout)
        self._finish(edit, answer, node)

    def _put_upstream(self, node: LabNode, rng: random.Random) -> None:
        entity = rng.choice(sorted(self.entities["upstreams"]))
        self._read(node, "upstreams", entity)
        seq = self.next_seq()
        tokens = {n: self._token(seq, "upstreams", n) for n in FIELDS["upstreams"]}
        edit = Edit(seq, node.name, "put", "upstreams", entity, tokens, time.time())
        body: dict[str, Any] = {"name": self.entities["upstreams"][entity]}
        body.update({n: _value("upstreams", n, t) for n, t in tokens.items()})
        answer = node.api("PUT", _path("upstreams", entity), body, timeout=self.timeout)
        self._finish(edit, answer, node)

    def _create(self, node: LabNode) -> None:
        seq = self.next_seq()
        name = f"c{seq}"
        token = self._token(seq, "vhosts", "locations")
        edit = Edit(seq, node.name, "create", "vhosts", name, {"locations": token}, time.time())
        body = {
            "name": name,
            "server_names": [f"{name}.faults.test"],
            "locations": _value("vhosts", "locations", token),
        }
        answer = node.api("POST", _path("vhosts"), body, timeout=self.timeout)
        if answer.ok and isinstance(answer.body, dict):
            with self._lock:
                self.created[name] = str(answer.body.get("id", ""))
        self._finish(edit, answer, node)
