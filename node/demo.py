"""``nxmesh demo``: a local mesh of three real nodes, each with its own nginx.

Everything lives under one directory (a fresh temporary one unless ``--dir``): three
state directories, their nginx prefixes, and the logs. The nodes listen on distinct
loopback ports; each nginx serves the ``http`` entry point on its own port. A sample
upstream (two HTTP backends on loopback) is started, one upstream and one vhost are
created through node 1's API, and the demo waits until every node's nginx serves the
vhost. Ctrl-C stops everything it started and removes what it created. Without nginx
the nodes run render-only, and the demo says so.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
from contextlib import suppress
from functools import partial
from pathlib import Path

from node.localmesh import LocalNode, NodeProcessError, backends, start_mesh, stop_all, until

__all__ = ["DemoError", "run_demo"]

NODES = 3
VHOST = "shop.demo.test"
READY_WAIT = 60.0


class DemoError(Exception):
    """The demo could not start; the message says why."""


def run_demo(directory: Path | None, *, keep: bool = False, wait_forever: bool = True) -> int:
    """Run the demo; returns the exit status."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    created = directory is None
    root = Path(tempfile.mkdtemp(prefix="nxmesh-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    extra: tuple[str, ...] = ("--preset", "local", "--nginx", "managed" if nginx else "render-only")
    if nginx:
        extra += ("--nginx-binary", nginx)
    else:
        print("nginx is not installed: the nodes run render-only (apt-get install nginx)")
    nodes: list[LocalNode] = []
    try:
        with backends(2) as ports:
            nodes = start_mesh(root, NODES, extra=extra, prefix="node")
            first = nodes[0]
            servers = [a for p in ports for a in ("--server", f"127.0.0.1:{p}")]
            first.cli("upstream", "create", "app", *servers)
            created_vhost = first.cli(
                "vhost", "create", "shop", "--server-name", VHOST, "--upstream", "app", "--json"
            )
            vhost_id = json.loads(created_vhost.stdout)["id"]
            ready = _serves if nginx else partial(_rendered, vhost_id=vhost_id)
            for node in nodes:
                until(
                    partial(ready, node), f"{node.name} to serve {VHOST} (see {root})", READY_WAIT
                )
            _explain(nodes, root, bool(nginx))
            if not wait_forever:
                return 0
            with suppress(KeyboardInterrupt):
                signal.pause()
            # A terminal's Ctrl-C may arrive twice (to us and relayed by a wrapper such as
            # `uv run`): the clean-up below must not be interrupted by the second.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("\nstopping the demo mesh...")
            return 0
    except NodeProcessError as exc:
        raise DemoError(str(exc)) from None
    finally:
        stop_all(nodes)
        if not keep:
            leftovers = [n.state for n in nodes] + [n.log for n in nodes]
            for path in leftovers + ([root] if created else []):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def _serves(node: LocalNode) -> bool:
    response = node.get(VHOST)
    return response is not None and response.status_code == 200 and "backend" in response.text


def _rendered(node: LocalNode, *, vhost_id: str) -> bool:
    conf = node.state / "nginx" / "conf"
    return any(vhost_id in p.name for p in conf.glob("http.d/*/vhosts/*.conf"))


def _explain(nodes: list[LocalNode], root: Path, nginx: bool) -> None:
    print(f"\nA mesh of {len(nodes)} nodes is running under {root}\n")
    for node in nodes:
        print(f"  {node.name}: mesh {node.listen}, nginx on {node.http} (https {node.https})")
    print("\nEvery node's nginx serves the same vhost (two backends, round robin):")
    for node in nodes:
        if nginx:
            print(f"  curl -H 'Host: {VHOST}' http://{node.http}/")
        else:
            print(f"  cat {node.state}/nginx/conf/http.d/*/vhosts/*.conf")
    print("\nLook around:")
    print(f"  export NXMESH_STATE_DIR={nodes[0].state}")
    print("  nxmesh members")
    print("  nxmesh vhost list")
    print("  nxmesh tui")
    print("  nxmesh vhost create blog --server-name blog.demo.test --upstream app \\")
    print(f"      --state-dir {nodes[2].state}")
    print("\nCtrl-C stops every node and removes what the demo created.")
    sys.stdout.flush()
