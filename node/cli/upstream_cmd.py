"""``nxmesh upstream create|list|show|update|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli.common import (
    add_delete,
    describe,
    echo_json,
    json_option,
    open_api,
    resolve,
    resolve_workspace,
    state_dir_option,
    table,
    warn_invalid,
    workspace_option,
)

METHODS = ("round_robin", "least_conn", "ip_hash", "hash", "random", "random_two_least_conn")
_INT_ATTRS = ("weight", "max_fails")
_TEXT_ATTRS = ("fail_timeout",)
_FLAG_ATTRS = ("backup", "down")
SERVER_HELP = (
    "ADDR[,weight=N][,max_fails=N][,fail_timeout=DUR][,backup][,down], e.g. "
    "10.0.0.5:8080,weight=2. Repeat for each server."
)


def parse_server(spec: str) -> dict[str, Any]:
    """``10.0.0.5:80,weight=2,backup`` -> ``{"address": ..., "weight": 2, "backup": True}``."""
    address, *attrs = spec.split(",")
    if not address:
        raise click.BadParameter(f"{spec!r}: the address comes first (host:port)")
    server: dict[str, Any] = {"address": address}
    for attr in attrs:
        key, sep, value = attr.partition("=")
        if key in _FLAG_ATTRS and not sep:
            server[key] = True
        elif key in _INT_ATTRS and sep and value.isdigit():
            server[key] = int(value)
        elif key in _TEXT_ATTRS and sep and value:
            server[key] = value
        else:
            known = ", ".join([*(f"{k}=N" for k in _INT_ATTRS), "fail_timeout=DUR", *_FLAG_ATTRS])
            raise click.BadParameter(f"{spec!r}: {attr!r} is not one of {known}")
    return server


def _servers(
    _: click.Context, __: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [parse_server(v) for v in values]


def _base(ws: dict[str, Any]) -> str:
    return f"/v1/workspaces/{ws['id']}/upstreams"


def _show(entity: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(entity)
    else:
        describe(entity)


@click.group()
def upstream() -> None:
    """Groups of servers that virtual hosts and streams send traffic to."""


@upstream.command()
@click.argument("name")
@click.option(
    "--server", "servers", multiple=True, required=True, callback=_servers, help=SERVER_HELP
)
@click.option("--method", type=click.Choice(METHODS), help="Load-balancing method.")
@click.option("--hash-key", help="With --method hash: e.g. $request_uri.")
@click.option("--consistent", is_flag=True, default=None, help="With --method hash: ketama.")
@click.option("--keepalive", type=click.IntRange(0), help="Idle connections kept per worker.")
@click.option("--description", help="Free text.")
@workspace_option
@state_dir_option
@json_option
def create(
    name: str,
    servers: list[dict[str, Any]],
    method: str | None,
    hash_key: str | None,
    consistent: bool | None,
    keepalive: int | None,
    description: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Create upstream NAME with its servers."""
    body: dict[str, Any] = {"name": name, "servers": servers}
    optional = {
        "method": method,
        "hash_key": hash_key,
        "consistent": consistent,
        "keepalive": keepalive,
        "description": description,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with open_api(state_dir) as api:
        created = api.post(_base(resolve_workspace(api, workspace)), body)
    if as_json:
        echo_json(created)
    else:
        click.echo(f"created upstream {created['name']} ({created['id']})")


@upstream.command(name="list")
@click.option("--name", help="Only this name.")
@click.option("--server", help="Only upstreams with this server address.")
@workspace_option
@state_dir_option
@json_option
def list_(
    name: str | None, server: str | None, workspace: str | None, state_dir: Path, as_json: bool
) -> None:
    """List the workspace's upstreams."""
    with open_api(state_dir) as api:
        listing = api.get(_base(resolve_workspace(api, workspace)), name=name, server=server)
    warn_invalid(listing, "upstream")
    items = listing["items"]
    if as_json:
        echo_json(items)
        return
    table(
        ("NAME", "ID", "METHOD", "SERVERS"),
        ([u["name"], u["id"], u["method"], [s["address"] for s in u["servers"]]] for u in items),
    )


@upstream.command()
@click.argument("upstream_ref", metavar="NAME|ID")
@workspace_option
@state_dir_option
@json_option
def show(upstream_ref: str, workspace: str | None, state_dir: Path, as_json: bool) -> None:
    """Show one upstream."""
    with open_api(state_dir) as api:
        entity = resolve(api, _base(resolve_workspace(api, workspace)), upstream_ref, "upstream")
    _show(entity, as_json)


@upstream.command()
@click.argument("upstream_ref", metavar="NAME|ID")
@click.option("--name", "new_name", help="Rename.")
@click.option(
    "--server",
    "servers",
    multiple=True,
    callback=_servers,
    help="Replace all servers: " + SERVER_HELP,
)
@click.option("--add-server", "added", multiple=True, callback=_servers, help="Add a server.")
@click.option("--remove-server", "removed", multiple=True, metavar="ADDR", help="Remove a server.")
@click.option("--method", type=click.Choice(METHODS), help="Load-balancing method.")
@click.option("--hash-key", help="With --method hash: e.g. $request_uri.")
@click.option("--consistent/--no-consistent", default=None, help="Ketama hashing.")
@click.option("--keepalive", type=click.IntRange(0), help="Idle connections kept per worker.")
@click.option("--description", help="Free text.")
@workspace_option
@state_dir_option
@json_option
def update(
    upstream_ref: str,
    new_name: str | None,
    servers: list[dict[str, Any]],
    added: list[dict[str, Any]],
    removed: tuple[str, ...],
    method: str | None,
    hash_key: str | None,
    consistent: bool | None,
    keepalive: int | None,
    description: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Change an upstream: only the options given are changed."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "name": new_name,
            "method": method,
            "hash_key": hash_key,
            "consistent": consistent,
            "keepalive": keepalive,
            "description": description,
        }.items()
        if v is not None
    }
    if servers and (added or removed):
        raise click.UsageError(
            "--server replaces the list; do not mix it with --add/--remove-server"
        )
    with open_api(state_dir) as api:
        base = _base(resolve_workspace(api, workspace))
        entity = resolve(api, base, upstream_ref, "upstream")
        if servers:
            changes["servers"] = servers
        elif added or removed:
            current = [s for s in entity["servers"] if s["address"] not in removed]
            missing = set(removed) - {s["address"] for s in entity["servers"]}
            if missing:
                raise click.UsageError(
                    f"no server {sorted(missing)[0]} in upstream {entity['name']}"
                )
            changes["servers"] = current + added
        if not changes:
            raise click.UsageError("nothing to change: give at least one option")
        updated = api.patch(f"{base}/{entity['id']}", changes)
    if as_json:
        echo_json(updated)
    else:
        click.echo(f"updated upstream {updated['name']} ({updated['id']})")


add_delete(
    upstream,
    "upstream",
    lambda api, ws: _base(resolve_workspace(api, ws)),
    scoped=True,
    help_text="Delete an upstream (refused while something uses it).",
)
