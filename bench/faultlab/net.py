"""The lab's network: a bridge, one network namespace per node joined to it by a veth
pair, and iptables rules *inside* those namespaces. Everything it creates carries one
random tag and is removed by :meth:`NetLab.destroy` (also after a failure half-way).

Nothing outside the lab is touched: the root namespace gets no address, no route and no
firewall rule; the bridge has no address. Faults are iptables rules in two chains the
lab adds to each namespace (``FL_IN`` from INPUT, ``FL_OUT`` from OUTPUT), so healing a
namespace is flushing two chains.

Names (Linux caps interface names at 15 characters):

- bridge ``nxfl<tag>-br``; veth ``nxfl<tag>-h<i>`` (root side) / ``eth0`` (inside);
- namespace ``nxfl<tag>-<pid>-n<i>``, and ``nxfl<tag>-<pid>-disk`` as the source of a
  small tmpfs: the owner's pid lets :func:`sweep_stale` remove what a harness killed with
  SIGKILL left behind, and nothing else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NetLab", "NetLabError", "disk_source", "need", "run", "sweep_stale"]

PREFIX = "nxfl"
CHAIN_IN = "FL_IN"
CHAIN_OUT = "FL_OUT"
DEVICE = "eth0"
SUBNET_FIRST_OCTETS = "10.213"
_NS_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{5}})-(\d+)-n\d+$")
_DISK_RE = re.compile(rf"^{PREFIX}[0-9a-f]{{5}}-(\d+)-disk$")
REPO = Path(__file__).resolve().parents[2]


class NetLabError(Exception):
    """The lab could not be built or a command in it failed; the message says which."""


def need(binary: str) -> str:
    """The path of ``binary`` (also looked up in the sbin directories)."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise NetLabError(f"{binary!r} is not installed (apt-get install iproute2 iptables)")
    return found


def run(
    argv: Sequence[str], *, stdin: str | None = None, check: bool = True, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run a command, bounded in time; :class:`NetLabError` with its stderr on failure."""
    try:
        result = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise NetLabError(f"{' '.join(argv)}: no answer within {timeout:g} s") from None
    if check and result.returncode != 0:
        raise NetLabError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove namespaces (and their bridge) that a lab whose process is gone left behind:
    only names of the lab's own pattern whose owner pid no longer runs. Returns them."""
    ip = need("ip")
    removed: list[str] = []
    listing = run([ip, "netns", "list"], check=False).stdout
    tags: set[str] = set()
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NS_RE.match(name)
        if m is None or _pid_alive(int(m.group(2))):
            continue
        for pid_text in run([ip, "netns", "pids", name], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_text), 9)
        run([ip, "netns", "del", name], check=False)
        removed.append(name)
        tags.add(m.group(1))
    for tag in tags:
        bridge = f"{PREFIX}{tag}-br"
        if run([ip, "link", "show", bridge], check=False).returncode == 0:
            run([ip, "link", "del", bridge], check=False)
            removed.append(bridge)
    # The small disks: tmpfs mounts whose source names the lab and its (dead) owner.
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            source, mountpoint = [*line.split(), "", ""][:2]
            m = _DISK_RE.match(source)
            if m is not None and not _pid_alive(int(m.group(1))):
                mountpoint = mountpoint.replace("\\040", " ")
                run([need("umount"), "-l", mountpoint], check=False)
                removed.append(mountpoint)
    return removed


def disk_source(tag: str) -> str:
    """The source name of a lab's tmpfs mounts (found again by :func:`sweep_stale`)."""
    return f"{PREFIX}{tag}-{os.getpid()}-disk"


@dataclass
class NetLab:
    """``count`` namespaces on one bridge. :meth:`create`, then :meth:`destroy` (always)."""

    count: int
    rng: random.Random = field(default_factory=random.Random)
    tag: str = ""
    subnet: ipaddress.IPv4Network = field(init=False)
    namespaces: list[str] = field(init=False, default_factory=list)
    addresses: list[str] = field(init=False, default_factory=list)
    _made_ns: list[str] = field(init=False, default_factory=list)
    _made_links: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 200:
            raise ValueError("count must be between 1 and 200")
        # The tag only names things: it comes from the OS, not the seeded plan, so two
        # runs with one seed never collide.
        self.tag = self.tag or os.urandom(3).hex()[:5]
        self.ip = need("ip")
        self.iptables = need("iptables")
        self.iptables_restore = need("iptables-restore")
        self.bridge = f"{PREFIX}{self.tag}-br"
        self.subnet = self._free_subnet()
        hosts = list(self.subnet.hosts())
        pid = os.getpid()
        for i in range(self.count):
            self.namespaces.append(f"{PREFIX}{self.tag}-{pid}-n{i + 1}")
            self.addresses.append(str(hosts[10 + i]))

    def _free_subnet(self) -> ipaddress.IPv4Network:
        """A /24 in 10.213.0.0/16 that overlaps no address or route of the root namespace."""
        used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for argv in ([self.ip, "-4", "-o", "addr", "show"], [self.ip, "-4", "route", "show"]):
            for word in run(argv, check=False).stdout.split():
                try:
                    used.append(ipaddress.ip_network(word, strict=False))
                except ValueError:
                    continue
        thirds = list(range(256))
        self.rng.shuffle(thirds)
        for third in thirds:
            net = ipaddress.IPv4Network(f"{SUBNET_FIRST_OCTETS}.{third}.0/24")
            if not any(u.version == 4 and net.overlaps(u) for u in used if u.prefixlen > 0):
                return net
        raise NetLabError(f"no free /24 in {SUBNET_FIRST_OCTETS}.0.0/16")

    # ------------------------------------------------------------------ build and remove

    def create(self) -> None:
        """Build the bridge, the namespaces and their links; on failure undo what was made."""
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        ip = self.ip
        run([ip, "link", "add", self.bridge, "type", "bridge", "stp_state", "0"])
        self._made_links.append(self.bridge)
        run([ip, "link", "set", self.bridge, "up"])
        for i, (ns, addr) in enumerate(zip(self.namespaces, self.addresses, strict=True), 1):
            run([ip, "netns", "add", ns])
            self._made_ns.append(ns)
            host_side, ns_side = f"{PREFIX}{self.tag}-h{i}", f"{PREFIX}{self.tag}-p{i}"
            run([ip, "link", "add", host_side, "type", "veth", "peer", "name", ns_side,
                 "netns", ns])  # fmt: skip
            self._made_links.append(host_side)
            run([ip, "link", "set", host_side, "master", self.bridge])
            run([ip, "link", "set", host_side, "up"])
            inside = [ip, "netns", "exec", ns, ip]
            run([*inside, "link", "set", "lo", "up"])
            run([*inside, "link", "set", ns_side, "name", DEVICE])
            run([*inside, "addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", DEVICE])
            run([*inside, "link", "set", DEVICE, "up"])
            script = (
                f"*filter\n:{CHAIN_IN} - [0:0]\n:{CHAIN_OUT} - [0:0]\n"
                f"-A INPUT -j {CHAIN_IN}\n-A OUTPUT -j {CHAIN_OUT}\nCOMMIT\n"
            )
            self._restore(ns, script)

    def destroy(self) -> None:
        """Remove every namespace and link this lab made (idempotent, never raises)."""
        ip = self.ip
        for ns in reversed(self._made_ns):
            for pid_text in run([ip, "netns", "pids", ns], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_text), 9)
            # Deleting the namespace destroys its end of the veth pair, and with it the pair.
            run([ip, "netns", "del", ns], check=False)
        self._made_ns.clear()
        for link in reversed(self._made_links):
            if run([ip, "link", "show", link], check=False).returncode == 0:
                run([ip, "link", "del", link], check=False)
        self._made_links.clear()

    def leftovers(self) -> list[str]:
        """Names of this lab's namespaces and links that still exist (empty after destroy)."""
        names = run([self.ip, "netns", "list"], check=False).stdout
        links = run([self.ip, "-o", "link", "show"], check=False).stdout
        prefix = f"{PREFIX}{self.tag}"
        found = [w.split()[0] for w in names.splitlines() if w.startswith(prefix)]
        for line in links.splitlines():
            parts = line.split(":")
            if len(parts) > 1 and parts[1].strip().split("@")[0].startswith(prefix):
                found.append(parts[1].strip().split("@")[0])
        return found

    # ------------------------------------------------------------------ running inside

    def exec_argv(self, index: int) -> list[str]:
        """The prefix that runs a command inside namespace ``index``."""
        return [self.ip, "netns", "exec", self.namespaces[index]]

    def python(self, index: int, *args: str) -> list[str]:
        """``python ARGS`` (this interpreter) inside namespace ``index``."""
        return [*self.exec_argv(index), sys.executable, *args]

    def _restore(self, ns: str, script: str) -> None:
        run([self.ip, "netns", "exec", ns, self.iptables_restore, "-n"], stdin=script)

    def rules(self, index: int) -> str:
        """The lab's rules in namespace ``index`` (``iptables -S`` of both chains)."""
        argv = [*self.exec_argv(index), self.iptables, "-S"]
        out = run(argv, check=False).stdout
        return "\n".join(line for line in out.splitlines() if "FL_" in line and "-A FL" in line)

    # ------------------------------------------------------------------ faults

    def block(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Drop every packet from ``a`` to ``b`` for each ``(a, b)`` (one way each)."""
        per_ns: dict[int, list[str]] = {}
        for a, b in pairs:
            src, dst = self.addresses[a], self.addresses[b]
            per_ns.setdefault(a, []).append(f"-A {CHAIN_OUT} -d {dst}/32 -j DROP")
            per_ns.setdefault(b, []).append(f"-A {CHAIN_IN} -s {src}/32 -j DROP")
        for index, lines in per_ns.items():
            self._restore(self.namespaces[index], "*filter\n" + "\n".join(lines) + "\nCOMMIT\n")

    def lose(self, index: int, probability: float) -> None:
        """Drop each packet in and out of namespace ``index`` on its link with ``probability``."""
        if not 0 < probability < 1:
            raise ValueError("probability must be between 0 and 1")
        p = f"{probability:.4f}"
        lines = [
            f"-A {CHAIN_IN} -i {DEVICE} -m statistic --mode random --probability {p} -j DROP",
            f"-A {CHAIN_OUT} -o {DEVICE} -m statistic --mode random --probability {p} -j DROP",
        ]
        self._restore(self.namespaces[index], "*filter\n" + "\n".join(lines) + "\nCOMMIT\n")

    def heal(self, indexes: Iterable[int] | None = None) -> None:
        """Flush the fault chains of the given namespaces (all by default)."""
        for index in range(self.count) if indexes is None else indexes:
            script = f"*filter\n-F {CHAIN_IN}\n-F {CHAIN_OUT}\nCOMMIT\n"
            self._restore(self.namespaces[index], script)
