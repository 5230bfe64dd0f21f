"""A standalone mesh node process, driven over stdin/stdout (tests and benchmarks)::

    python -m mesh.agent --seed-hex HEX64 --listen HOST:PORT --mesh-id TEXT --members FILE
        [--join HOST:PORT ...] [--preset local|lan|wan] [--set FIELD=VALUE ...]
        [--boot-epoch N] [--meta TEXT]

``--members`` names a file of hex public keys, one a line: the static member set, read
again on SIGHUP (so a key can be revoked). ``--set probe_interval=0.5`` overrides a
:class:`~mesh.config.MeshConfig` field.

stdout carries one JSON object a line, each with ``"t"`` (``time.time()``, for latency
measured across processes): ``listening`` (``addr``, ``key``), ``joined_mesh`` (``ok``),
member events ``alive|joined|suspect|dead|left|updated`` (``member``, ``incarnation``,
``addr``, ``meta``), ``broadcast`` (``id``, ``origin``, ``payload``), and the replies to
commands. stdin takes JSON lines: ``{"cmd": "broadcast", "payload": TEXT}``,
``{"cmd": "members"}``, ``{"cmd": "meta", "meta": TEXT}``, ``{"cmd": "stats"}``,
``{"cmd": "leave"}`` (leave gracefully and exit 0). A bad line gets ``{"event": "error"}``;
end of stdin changes nothing. SIGTERM and SIGINT leave gracefully and exit 0.

Output goes through a bounded queue to a non-blocking writer: a reader that stops
reading loses lines (counted in ``stats`` as ``lines_dropped``), never the node's pace.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import trio

from mesh.config import MeshConfig
from mesh.delegate import StaticMembers
from mesh.driver import MeshNode
from mesh.errors import LocalProtocolError, MeshError
from mesh.events import (
    BroadcastDelivered,
    Event,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberRemoved,
    MemberSuspect,
    MemberUpdated,
)
from mesh.keys import Identity
from mesh.member import Address, Member

_EVENT_NAMES: dict[type, str] = {
    MemberAlive: "alive",
    MemberJoined: "joined",
    MemberSuspect: "suspect",
    MemberDead: "dead",
    MemberLeft: "left",
    MemberUpdated: "updated",
    MemberRemoved: "removed",
}
_OUTPUT_LINES = 4096
_MAX_COMMAND = 1 << 20
_LEAVE_GRACE = 3.0
_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS |= {"0": False, "false": False, "no": False, "off": False}


def _address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return host.strip("[]"), number


def _override(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    defaults = MeshConfig()
    if not sep or name not in {f.name for f in fields(MeshConfig)}:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with a MeshConfig field: {text!r}")
    kind = type(getattr(defaults, name))
    if kind is bool and raw.lower() in _BOOLS:
        return name, _BOOLS[raw.lower()]
    try:
        if kind is not bool:
            return name, kind(raw)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{name} takes a {kind.__name__}: {raw!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mesh.agent", description=__doc__.split("\n")[0])
    p.add_argument("--seed-hex", required=True, help="32-byte Ed25519 seed, hex")
    p.add_argument("--listen", required=True, type=_address, help="HOST:PORT (UDP and TCP)")
    p.add_argument("--mesh-id", required=True)
    p.add_argument("--members", required=True, type=Path, help="file of hex public keys")
    p.add_argument("--join", action="append", default=[], type=_address, metavar="HOST:PORT")
    p.add_argument("--preset", default="local", choices=["local", "lan", "wan"])
    p.add_argument("--set", action="append", default=[], type=_override, metavar="FIELD=VALUE")
    p.add_argument("--boot-epoch", type=int, default=None, help="default: time.time_ns()")
    p.add_argument("--meta", default="")
    return p


def read_members(path: Path) -> set[bytes]:
    """The public keys listed in ``path`` (hex, one a line; blank lines and # ignored)."""
    keys = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            keys.add(bytes.fromhex(line))
    return keys


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _member_json(member: Member) -> dict[str, Any]:
    return {
        "key": member.key.hex(),
        "state": member.state.label,
        "incarnation": member.incarnation,
        "addr": list(member.addr),
        "meta": _text(member.meta),
    }


def event_json(event: Event) -> dict[str, Any]:
    """The stdout record of a core event."""
    if isinstance(event, BroadcastDelivered):
        return {
            "event": "broadcast",
            "id": event.broadcast_id.hex(),
            "origin": event.origin.hex(),
            "payload": _text(event.payload),
        }
    m = event.member
    return {
        "event": _EVENT_NAMES[type(event)],
        "member": m.key.hex(),
        "incarnation": m.incarnation,
        "addr": list(m.addr),
        "meta": _text(m.meta),
    }


class _Output:
    """JSON lines to stdout without ever blocking the node."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[bytes](_OUTPUT_LINES)
        self._scope = trio.CancelScope()
        self.dropped = 0

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, "t": time.time()}, separators=(",", ":")) + "\n"
        try:
            self._send.send_nowait(line.encode())
        except trio.WouldBlock:
            self.dropped += 1
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        """No more lines; the writer drains the queue for 2 s at most."""
        self._send.close()
        self._scope.deadline = trio.current_time() + 2.0

    async def run(self) -> None:
        with self._scope:
            async with trio.lowlevel.FdStream(os.dup(sys.stdout.fileno())) as out:
                async for line in self._receive:
                    await out.send_all(line)


class Agent:
    """The node plus its command interface."""

    def __init__(self, args: argparse.Namespace, out: _Output) -> None:
        self.args = args
        self.out = out
        self.members_file: Path = args.members
        self.delegate = StaticMembers(read_members(self.members_file))
        config = MeshConfig.preset(args.preset, **dict(args.set))
        self.node = MeshNode(
            identity=Identity.from_seed(bytes.fromhex(args.seed_hex)),
            mesh_id=args.mesh_id.encode(),
            bind=args.listen,
            config=config,
            delegate=self.delegate,
            boot_epoch=time.time_ns() if args.boot_epoch is None else args.boot_epoch,
            meta=args.meta.encode(),
        )
        self.stop = trio.Event()

    async def run(self) -> int:
        async with trio.open_nursery() as nursery:
            node = self.node
            nursery.start_soon(self._signals)
            try:
                await nursery.start(node.run)
            except OSError as exc:  # cannot bind
                _complain(exc)
                nursery.cancel_scope.cancel()
                return 2
            events = node.subscribe()
            nursery.start_soon(self._forward, events)
            self.out.emit({"event": "listening", "addr": list(node.addr), "key": node.key.hex()})
            if self.args.join:
                try:
                    ok = await node.join(self.args.join)
                except (MeshError, ValueError) as exc:
                    _complain(exc)
                    nursery.cancel_scope.cancel()
                    return 1
                self.out.emit({"event": "joined_mesh", "ok": ok})
            nursery.start_soon(self._commands)
            await self.stop.wait()
            await node.leave(_LEAVE_GRACE)
            self.out.emit({"event": "left_mesh"})
            nursery.cancel_scope.cancel()
        return 0

    async def _forward(self, events: trio.MemoryReceiveChannel[Event]) -> None:
        async for event in events:
            self.out.emit(event_json(event))

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self._reload_members()
                else:
                    self.stop.set()

    def _reload_members(self) -> None:
        try:
            keys = read_members(self.members_file)
        except (OSError, ValueError) as exc:
            self.out.emit({"event": "error", "message": f"members file not reloaded: {exc}"})
            return
        revoked = self.delegate.keys - keys
        self.delegate.keys = keys
        for key in revoked:
            self.node.forget(key)
        self.out.emit({"event": "members_reloaded", "count": len(keys)})

    async def _commands(self) -> None:
        buffer = bytearray()
        try:
            fd = os.dup(sys.stdin.fileno())
        except (OSError, ValueError):
            return  # no stdin at all: nothing to read
        async with trio.lowlevel.FdStream(fd) as stdin:
            while True:
                data = await stdin.receive_some(65536)
                if not data:
                    return  # end of stdin: keep running
                buffer += data
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    self._command(line)
                if len(buffer) > _MAX_COMMAND:
                    buffer.clear()
                    self.out.emit({"event": "error", "message": "command line too long"})

    def _command(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            self._execute(json.loads(line))
        except (ValueError, TypeError, KeyError, LocalProtocolError) as exc:
            self.out.emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})

    def _execute(self, request: Any) -> None:
        if not isinstance(request, dict):
            raise TypeError("a command is a JSON object")
        node = self.node
        match request.get("cmd"):
            case "broadcast":
                bid = node.broadcast(str(request["payload"]).encode())
                self.out.emit({"event": "broadcast_sent", "id": bid.hex()})
            case "members":
                members = [_member_json(m) for m in node.members()]
                self.out.emit({"event": "members", "members": members})
            case "meta":
                node.set_meta(str(request["meta"]).encode())
                self.out.emit({"event": "meta_set", "incarnation": node.core.incarnation})
            case "stats":
                self.out.emit({"event": "stats", **self._stats()})
            case "leave":
                self.stop.set()
            case other:
                raise ValueError(f"unknown command {other!r}")

    def _stats(self) -> dict[str, Any]:
        stats = self.node.stats
        record: dict[str, Any] = {}
        for f in fields(stats):
            value = getattr(stats, f.name)
            record[f.name] = dict(value) if isinstance(value, dict) else value
        io = self.node.io
        record["io"] = {
            f.name: dict(v) if isinstance(v := getattr(io, f.name), dict) else v for f in fields(io)
        }
        record["lines_dropped"] = self.out.dropped
        return record


async def _main(args: argparse.Namespace) -> int:
    out = _Output()
    try:
        agent = Agent(args, out)
    except (OSError, ValueError, MeshError) as exc:
        _complain(exc)
        return 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.run)
        try:
            code = await agent.run()
        finally:
            out.close()
    return code


def _complain(exc: BaseException) -> None:
    print(f"mesh.agent: {exc}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; the process exit code."""
    args = _parser().parse_args(argv)
    return trio.run(_main, args)


if __name__ == "__main__":
    sys.exit(main())
