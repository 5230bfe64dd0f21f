"""``python -m mesh.agent``: real meshes of child processes on 127.0.0.1.

Failure detection across processes is measured with the agents' own wall-clock stamps
(``"t"``) against the moment of the ``kill -9``.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from mesh.config import MeshConfig
from mesh.keys import Identity
from mesh.suspicion import suspicion_bounds
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

SEEDS = [bytes([0x40 + i]) * 32 for i in range(5)]
KEYS = [Identity.from_seed(seed).public_key.hex() for seed in SEEDS]
PRESET = "local"
# Anti-entropy every 5 s bounds how long a new member's gossip can miss someone.
OVERRIDES = {"push_pull_interval": 5.0}
CONFIG = MeshConfig.preset(PRESET, **OVERRIDES)
START = 20.0  # python start-up of five processes on a busy two-core machine, plus joins


def detection_bound(cfg: MeshConfig, n: int) -> float:
    """Longest a healthy member of an ``n``-node mesh takes to report a ``kill -9``'d one
    dead:

    - its own probe of the dead node fails: probing is a shuffled round-robin over the
      other n - 1 members, so up to 2(n - 1) - 1 rounds pass before it comes up, plus the
      failing round: ``2 (n - 1) probe_interval``;
    - its suspicion runs out: at most Lifeguard's maximum, ``suspicion_max_timeout_mult *
      suspicion_mult * max(1, log10 n) * probe_interval`` (the minimum once another member
      confirms, which is the usual case);
    - one second for gossip and scheduling.

    It assumes the observers are healthy (Lifeguard multiplies their probe interval by up
    to ``awareness_max_multiplier`` when they are not).
    """
    _, longest = suspicion_bounds(
        n, cfg.probe_interval, cfg.suspicion_mult, cfg.suspicion_max_timeout_mult
    )
    return 2 * (n - 1) * cfg.probe_interval + longest + 1.0


def test_detection_bound_for_the_local_preset() -> None:
    # 2 * 4 * 1 s + 6 * 3 * 1 * 1 s + 1 s
    assert detection_bound(MeshConfig.local(), 5) == pytest.approx(27.0)
    assert math.isfinite(detection_bound(MeshConfig.wan(), 1000))


@dataclass
class Agent:
    index: int
    process: trio.Process
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return KEYS[self.index]

    def first(self, event: str, **match: Any) -> dict[str, Any] | None:
        for record in self.records:
            if record["event"] == event and all(record.get(k) == v for k, v in match.items()):
                return record
        return None

    def view(self) -> dict[str, str]:
        """Member key -> state, from the member events so far."""
        states: dict[str, str] = {}
        for record in self.records:
            if "member" in record:
                state = record["event"]
                states[record["member"]] = "alive" if state in {"joined", "updated"} else state
        return states

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(command).encode() + b"\n")


@dataclass
class Fleet:
    nursery: trio.Nursery
    tmp: Path
    members: Path
    agents: dict[int, Agent] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)

    async def launch(self, index: int, listen: str, *extra: str) -> Agent:
        command = [
            sys.executable, "-m", "mesh.agent",
            "--seed-hex", SEEDS[index].hex(),
            "--listen", listen,
            "--mesh-id", "process-test",
            "--members", str(self.members),
            "--preset", PRESET,
            *(arg for k, v in OVERRIDES.items() for arg in ("--set", f"{k}={v}")),
            *extra,
        ]  # fmt: skip
        stderr = (self.tmp / f"agent{index}.err").open("ab")
        run = partial(
            trio.run_process,
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            check=False,
        )
        process: trio.Process = await self.nursery.start(run)
        stderr.close()  # the child has its own copy
        agent = Agent(index, process)
        self.agents[index] = agent
        self.nursery.start_soon(self._read, agent)
        return agent

    async def _read(self, agent: Agent) -> None:
        assert agent.process.stdout is not None
        buffer = b""
        async for chunk in agent.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                agent.records.append(json.loads(line))
            self.changed.set()

    async def until(self, condition: Callable[[], bool], bound: float) -> None:
        """Wait for ``condition``, re-checked after every line any agent prints."""
        with trio.fail_after(bound):
            while not condition():
                self.changed = trio.Event()
                await self.changed.wait()

    def stderr(self) -> str:
        return "\n".join(
            f"agent{i}: {(self.tmp / f'agent{i}.err').read_text()}" for i in self.agents
        )


@asynccontextmanager
async def fleet(tmp_path: Path, keys: list[str] = KEYS) -> AsyncIterator[Fleet]:
    members = tmp_path / "members"
    members.write_text("\n".join(keys) + "\n")
    async with trio.open_nursery() as nursery:
        f = Fleet(nursery, tmp_path, members)
        try:
            yield f
        except BaseException:
            print(f.stderr())
            raise
        finally:
            # Cancelling run_process terminates the children (SIGTERM: they leave).
            nursery.cancel_scope.cancel()


def address(agent: Agent) -> str:
    record = agent.first("listening")
    assert record is not None
    host, port = record["addr"]
    return f"{host}:{port}"


async def test_five_agents_kill_restart_and_leave(tmp_path: Path) -> None:
    async with fleet(tmp_path) as f:
        # -- five processes, joined through the first
        first = await f.launch(0, "127.0.0.1:0")
        await f.until(lambda: first.first("listening") is not None, START)
        seed = address(first)
        for i in range(1, 5):
            await f.launch(i, "127.0.0.1:0", "--join", seed)
        agents = [f.agents[i] for i in range(5)]
        await f.until(lambda: all(a.first("joined_mesh", ok=1) for a in agents[1:]), START)

        def sees_all(a: Agent) -> bool:
            view = a.view()
            return all(view.get(k) == "alive" for k in KEYS if k != a.key)

        await f.until(lambda: all(sees_all(a) for a in agents), 3 * CONFIG.push_pull_interval)
        for a in agents:
            await a.send({"cmd": "members"})
        await f.until(lambda: all(a.first("members") for a in agents), 10)
        for a in agents:
            listed = a.first("members")
            assert listed is not None
            assert sorted(m["key"] for m in listed["members"]) == sorted(KEYS)
            assert {m["state"] for m in listed["members"]} == {"alive"}

        # -- kill -9 one: every other reports it dead within the bound
        victim = agents[4]
        victim_addr = address(victim)
        killed_at = time.time()
        victim.process.kill()
        bound = detection_bound(CONFIG, 5)
        others = agents[:4]
        await f.until(lambda: all(a.first("dead", member=victim.key) for a in others), bound)
        detection = []
        for a in others:
            dead = a.first("dead", member=victim.key)
            assert dead is not None
            detection.append(dead["t"] - killed_at)
            assert a.first("left", member=victim.key) is None
        print(f"kill -9 detected after {[round(d, 2) for d in detection]} s (bound {bound} s)")
        assert max(detection) <= bound
        dead_incarnation = max(
            r["incarnation"] for a in others for r in a.records if r.get("member") == victim.key
        )

        # -- restarted with the same identity: alive again, at a higher incarnation
        restarted = await f.launch(4, victim_addr, "--join", seed)

        def back(a: Agent) -> bool:
            return any(
                r["event"] in {"joined", "alive"}
                and r["member"] == victim.key
                and r["incarnation"] > dead_incarnation
                for r in a.records
            )

        await f.until(lambda: all(back(a) for a in others), START)
        # Peers may hear of it before its own join call returns and is reported.
        await f.until(lambda: restarted.first("joined_mesh", ok=1) is not None, START)

        # -- a graceful leave is reported as left, not dead
        leaver = agents[3]
        await leaver.send({"cmd": "leave"})
        stayers = [agents[0], agents[1], agents[2], restarted]
        await f.until(lambda: all(a.first("left", member=leaver.key) for a in stayers), 10)
        with trio.fail_after(10):
            assert await leaver.process.wait() == 0
        # Its last line may still be on its way through the reader.
        await f.until(lambda: leaver.first("left_mesh") is not None, 5)
        for a in stayers:
            assert a.first("dead", member=leaver.key) is None


async def test_agent_commands_signals_and_errors(tmp_path: Path) -> None:
    async with fleet(tmp_path, KEYS[:2]) as f:
        a = await f.launch(0, "127.0.0.1:0")
        await f.until(lambda: a.first("listening") is not None, START)
        assert a.first("listening", key=KEYS[0]) is not None

        # Bad lines get an error and the agent carries on.
        assert a.process.stdin is not None
        await a.process.stdin.send_all(b'not json\n[1, 2]\n{"cmd": "fly"}\n')
        await a.send({"cmd": "meta", "meta": "x" * 600})
        await f.until(lambda: sum(r["event"] == "error" for r in a.records) == 4, 10)
        assert any("MetaTooLarge" in r["message"] for r in a.records if r["event"] == "error")

        # A second agent joins; broadcasts and metadata flow both ways.
        b = await f.launch(1, "127.0.0.1:0", "--join", address(a))
        await f.until(lambda: b.first("joined_mesh", ok=1) is not None, START)
        await b.send({"cmd": "broadcast", "payload": "héllo"})
        await b.send({"cmd": "meta", "meta": "role=edge"})
        await f.until(
            lambda: (
                a.first("broadcast", payload="héllo", origin=KEYS[1]) is not None
                and a.first("updated", member=KEYS[1], meta="role=edge") is not None
            ),
            10,
        )
        sent = b.first("broadcast_sent")
        assert sent is not None
        assert a.first("broadcast", id=sent["id"]) is not None

        # SIGHUP re-reads the member file: b is revoked, its datagrams are now dropped.
        f.members.write_text(KEYS[0] + "\n")
        a.process.send_signal(signal.SIGHUP)
        await f.until(lambda: a.first("members_reloaded", count=1) is not None, 10)

        def not_member_drops() -> int:
            stats = [r for r in a.records if r["event"] == "stats"]
            return stats[-1]["drops"].get("not_member", 0) if stats else 0

        with trio.fail_after(3 * CONFIG.probe_interval + 5):
            while not_member_drops() == 0:
                replies = partial(lambda n: len(a.records) > n, len(a.records))
                await a.send({"cmd": "stats"})
                await f.until(replies, 10)

        # End of stdin changes nothing; SIGTERM leaves gracefully and exits 0.
        await a.process.stdin.aclose()
        await b.send({"cmd": "members"})
        await f.until(lambda: b.first("members") is not None, 10)
        a.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await a.process.wait() == 0
        assert a.first("left_mesh") is not None

        # No seed answers: exit 1 with one line on stderr.
        with trio.socket.socket() as probe:
            await probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        c = await f.launch(0, "127.0.0.1:0", "--join", f"127.0.0.1:{closed}")
        with trio.fail_after(START):
            assert await c.process.wait() == 1
        err = (f.tmp / "agent0.err").read_text().strip().splitlines()
        assert err[-1].startswith("mesh.agent: could not join")
        assert c.first("joined_mesh") is None


def test_agent_usage_errors(tmp_path: Path) -> None:
    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mesh.agent", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    bad_listen = agent("--seed-hex", "00", "--listen", "nope", "--mesh-id", "m", "--members", "x")
    assert bad_listen.returncode == 2
    assert "HOST:PORT" in bad_listen.stderr

    members = tmp_path / "members"
    members.write_text(KEYS[0] + "\n")
    common = ["--seed-hex", SEEDS[0].hex(), "--mesh-id", "m", "--members", str(members)]
    bad_field = agent(*common, "--listen", "127.0.0.1:0", "--set", "probe_timeout=5")
    assert bad_field.returncode == 2
    assert bad_field.stderr.strip() == "mesh.agent: probe_timeout must not exceed probe_interval"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        in_use = agent(*common, "--listen", f"127.0.0.1:{port}")
    assert in_use.returncode == 2
    assert in_use.stderr.strip() == "mesh.agent: [Errno 98] Address already in use"
