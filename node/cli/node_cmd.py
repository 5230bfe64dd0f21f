"""Bootstrap and membership commands: init, join, run, invite, status, members, assign,
label, revoke, leave. Errors are one line on stderr with a non-zero exit."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from node.cli.client import Api
from node.cli.common import echo_json, json_option, open_api, state_dir_option, table

__all__ = [
    "assign",
    "init",
    "invite",
    "join",
    "label",
    "leave",
    "members",
    "revoke",
    "run",
    "status",
]

_PID_FILE = "nxmesh.pid"


def _node_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--name", required=True, help="This node's name (a DNS label)."),
            click.option(
                "--listen", required=True, metavar="HOST:PORT", help="Mesh address (UDP+TCP)."
            ),
            click.option("--advertise", metavar="HOST:PORT", help="Address others reach."),
            click.option("--http", metavar="HOST:PORT", help="Bind of the http entry point."),
            click.option("--https", metavar="HOST:PORT", help="Bind of the https entry point."),
            click.option(
                "--nginx",
                "nginx_mode",
                type=click.Choice(["managed", "external", "render-only"]),
                default="managed",
                show_default=True,
                help="Run nginx as our child, HUP an existing one, or only write files.",
            ),
            click.option("--nginx-binary", help="Path of nginx (default /usr/sbin/nginx)."),
            click.option("--preset", type=click.Choice(["lan", "wan", "local"]), default="lan"),
            click.option(
                "--metrics",
                metavar="HOST:PORT|off",
                help="Prometheus endpoint on loopback (default 127.0.0.1:0).",
            ),
        ]
    ):
        f = option(f)
    return f


def _config(**values: Any) -> Any:
    from node.config import ConfigError, NodeConfig

    try:
        return NodeConfig.from_values({k: v for k, v in values.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@state_dir_option
@_node_options
def init(state_dir: Path, **options: Any) -> None:
    """Create a new mesh with this node as its first member."""
    from node.bootstrap import BootstrapError, init_node
    from node.statedir import StateDir, StateDirError

    config = _config(**options)
    try:
        created = init_node(StateDir.at(state_dir), config)
    except (BootstrapError, StateDirError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created mesh {created.genesis.mesh_id.hex()} with node {config.name}")
    click.echo(f"start it:  nxmesh run --state-dir {state_dir}")


@click.command()
@click.argument("token")
@state_dir_option
@_node_options
def join(token: str, state_dir: Path, **options: Any) -> None:
    """Join an existing mesh with a TOKEN from `nxmesh invite`."""
    import trio

    from node.bootstrap import BootstrapError, join_node
    from node.statedir import StateDir, StateDirError

    config = _config(**options)
    try:
        created = trio.run(join_node, StateDir.at(state_dir), token, config)
    except (BootstrapError, StateDirError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"joined mesh {created.genesis.mesh_id.hex()} as {config.name}")
    click.echo(f"start it:  nxmesh run --state-dir {state_dir}")


@click.command()
@state_dir_option
@click.option("--listen", metavar="HOST:PORT", help="Override the mesh address.")
@click.option("--metrics", metavar="HOST:PORT|off", help="Override the metrics endpoint.")
@click.option(
    "--log-json/--log-text", default=None, help="Log format (default: JSON unless a tty)."
)
def run(state_dir: Path, listen: str | None, metrics: str | None, log_json: bool | None) -> None:
    """Run the node daemon in the foreground (SIGTERM or Ctrl-C: leave and stop)."""
    import trio

    from node import logs
    from node.config import ConfigError, NodeConfig
    from node.daemon import Daemon, DaemonError
    from node.statedir import StateDir, StateDirError

    logs.configure(json=log_json)
    state = StateDir.at(state_dir)
    try:
        state.require()
        config = NodeConfig.load(state.config, overrides={"listen": listen, "metrics": metrics})
        daemon = Daemon(state, config)
    except (ConfigError, StateDirError, DaemonError) as exc:
        raise click.ClickException(str(exc)) from None
    pid_file = state.root / _PID_FILE

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run)
                pid_file.write_text(f"{os.getpid()}\n")

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        daemon.request_shutdown()
                        return

                nursery.start_soon(stop_on_signal)
                await daemon.wait_stopped()
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except Exception as exc:
        cause = _sole(exc)
        if isinstance(cause, DaemonError):  # e.g. the mesh port is taken: one line
            raise click.ClickException(str(cause)) from None
        # stderr gets one line; the log keeps the traceback for whoever reads it later.
        logs.get("node").exception("the daemon stopped on an unexpected error")
        raise
    finally:
        pid_file.unlink(missing_ok=True)


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside (nested) groups of one - trio's nurseries wrap what
    their tasks raise - or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@click.command()
@state_dir_option
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 2d.")
@click.option("--uses", default=1, show_default=True, type=click.IntRange(1, 1000))
def invite(state_dir: Path, ttl: str, uses: int) -> None:
    """Print a join token for one more node (needs the daemon running)."""
    with open_api(state_dir) as api:
        created = api.post("/v1/invites", {"ttl": ttl, "uses": uses})
    click.echo(created["token"])


@click.command()
@state_dir_option
@json_option
def status(state_dir: Path, as_json: bool) -> None:
    """This node and the mesh in brief."""
    with open_api(state_dir) as api:
        data = api.get("/v1/status")
    if as_json:
        echo_json(data)
        return
    for key in ("node", "key", "address", "version", "mesh_id", "uptime_s", "metrics"):
        if key in data:
            click.echo(f"{key:<10} {data[key]}")
    members = data.get("members") or {}
    click.echo(f"{'members':<10} " + ", ".join(f"{n} {s}" for s, n in sorted(members.items())))
    apply = data.get("apply") or {}
    if apply:
        revision = apply.get("revision") or "-"
        line = f"{apply.get('apply')} (nginx {apply.get('nginx')}, revision {revision})"
        if apply.get("reason"):
            line += f": {apply['reason']}"
        click.echo(f"{'apply':<10} {line}")
    for q in data.get("quarantined") or []:
        click.echo(f"{'quarantine':<10} {q['unit']}: {q['reason']}")
    for unit, info in sorted((data.get("units") or {}).items()):
        click.echo(f"{info['state']:<10} {unit}: {info['reason']}")
    for line in data.get("invalid") or []:
        click.echo(f"{'invalid':<10} {line}")


@click.command()
@state_dir_option
@json_option
def members(state_dir: Path, as_json: bool) -> None:
    """Every member with its state, address, workspaces and published status."""
    with open_api(state_dir) as api:
        items = api.get("/v1/nodes")["items"]
        names = _workspace_names(api) if not as_json else {}
    if as_json:
        echo_json(items)
        return
    table(
        ["NAME", "STATE", "ADDRESS", "WORKSPACES", "APPLY", "REVISION", "KEY"],
        [
            [
                m["name"],
                m["state"],
                m.get("address") or "-",
                [names.get(w, w) for w in m.get("workspaces") or []],
                (m.get("metadata") or {}).get("apply", "-"),
                (m.get("metadata") or {}).get("revision") or "-",
                m["key"],
            ]
            for m in items
        ],
    )


def _workspace_names(api: Api) -> dict[str, str]:
    """Workspace id -> name (``*``, every workspace, as itself)."""
    names = {str(w["id"]): str(w["name"]) for w in api.get("/v1/workspaces")["items"]}
    return {"*": "*", **names}


@click.command()
@click.argument("node")
@click.argument("workspaces", nargs=-1, metavar="[WORKSPACE]...")
@click.option("--all", "every", is_flag=True, help="Every workspace, present and future (*).")
@click.option("--none", "nothing", is_flag=True, help="No workspace: membership only.")
@state_dir_option
@json_option
def assign(
    node: str,
    workspaces: tuple[str, ...],
    every: bool,
    nothing: bool,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Replace the workspaces NODE serves (replicates and renders): WORKSPACE names or
    ids, --all or --none (exactly one of the three). Admin role."""
    if sum((bool(workspaces), every, nothing)) != 1:
        raise click.UsageError("give WORKSPACE names or ids, --all or --none (exactly one)")
    wanted = ["*"] if every else list(workspaces)
    with open_api(state_dir) as api:
        member = api.request("PUT", f"/v1/nodes/{node}/workspaces", body={"workspaces": wanted})
        names = _workspace_names(api) if not as_json else {}
    if as_json:
        echo_json(member)
        return
    served = member.get("workspaces") or []
    if served == ["*"]:
        click.echo(f"{member['name']} serves every workspace")
    elif not served:
        click.echo(f"{member['name']} serves no workspace")
    else:
        listed = ", ".join(f"{names.get(w, w)} ({w})" for w in served)
        click.echo(f"{member['name']} serves {listed}")


def _label_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not key:
            raise click.UsageError(f"{pair!r}: a label is KEY=VALUE, KEY= or KEY")
        if key in labels:
            raise click.UsageError(f"label {key!r} is given twice")
        labels[key] = value
    return labels


@click.command()
@click.argument("node")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
@state_dir_option
@json_option
def label(node: str, pairs: tuple[str, ...], state_dir: Path, as_json: bool) -> None:
    """Replace NODE's labels with KEY=VALUE pairs (KEY= or KEY alone: an empty value; no
    pair: no labels). Admin role."""
    labels = _label_pairs(pairs)
    with open_api(state_dir) as api:
        member = api.request("PUT", f"/v1/nodes/{node}/labels", body={"labels": labels})
    if as_json:
        echo_json(member)
        return
    shown = " ".join(f"{k}={v}" for k, v in sorted((member.get("labels") or {}).items()))
    click.echo(f"{member['name']} labels: {shown}" if shown else f"{member['name']} has no labels")


@click.command()
@click.argument("node")
@state_dir_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def revoke(node: str, state_dir: Path, yes: bool) -> None:
    """Revoke NODE (name or key fingerprint) for good: it can never come back."""
    if not yes:
        click.confirm(f"Revoke {node} for good?", abort=True)
    with open_api(state_dir) as api:
        api.post(f"/v1/nodes/{node}/revoke", {})
    click.echo(f"revoked {node}")


@click.command()
@state_dir_option
def leave(state_dir: Path) -> None:
    """Leave the mesh gracefully and stop this node's daemon."""
    pid_file = Path(state_dir) / _PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        raise click.ClickException(f"no running daemon for {state_dir} (no {pid_file})") from None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise click.ClickException(f"the daemon (pid {pid}) is not running") from None
    except PermissionError:
        raise click.ClickException(f"not allowed to stop the daemon (pid {pid})") from None
    click.echo(f"asked the daemon (pid {pid}) to leave the mesh and stop")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its nodes (default: a fresh temporary directory).",
)
@click.option("--keep", is_flag=True, help="Keep the directory when the demo stops.")
def demo(directory: Path | None, keep: bool) -> None:
    """A local mesh of three nodes with real nginx; Ctrl-C stops and cleans up."""
    from node.demo import DemoError, run_demo

    try:
        code = run_demo(directory, keep=keep)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    raise SystemExit(code)
