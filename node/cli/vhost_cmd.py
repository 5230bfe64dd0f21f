"""``nxmesh vhost create|list|show|update|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli.client import Api
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


def _base(ws: dict[str, Any]) -> str:
    return f"/v1/workspaces/{ws['id']}/vhosts"


def _upstream_id(api: Api, ws: dict[str, Any], ref: str) -> str:
    return str(resolve(api, f"/v1/workspaces/{ws['id']}/upstreams", ref, "upstream")["id"])


def _certificate_id(api: Api, ws: dict[str, Any], ref: str) -> str:
    return str(resolve(api, f"/v1/workspaces/{ws['id']}/certificates", ref, "certificate")["id"])


def _tls(
    api: Api, ws: dict[str, Any], mode: str | None, certificate: str | None, redirect: bool | None
) -> dict[str, Any] | None:
    if certificate is not None:
        if mode not in (None, "manual"):
            raise click.UsageError("--certificate goes with --tls manual (or no --tls)")
        mode = "manual"
    if mode is None:
        if redirect:
            raise click.UsageError("--redirect-http needs TLS: give --tls acme or --certificate")
        return None
    tls: dict[str, Any] = {"mode": mode}
    if certificate is not None:
        tls["certificate"] = _certificate_id(api, ws, certificate)
    if redirect is not None:
        tls["redirect_http"] = redirect
    return tls


@click.group()
def vhost() -> None:
    """Virtual hosts: server names and where their requests go."""


@vhost.command()
@click.argument("name")
@click.option(
    "--server-name",
    "server_names",
    multiple=True,
    required=True,
    help="Host name answered (repeat).",
)
@click.option(
    "--upstream",
    "upstream_ref",
    required=True,
    metavar="NAME|ID",
    help="Upstream that PATH proxies to.",
)
@click.option("--path", default="/", show_default=True, help="Location prefix proxied.")
@click.option(
    "--entry-point", "entry_points", multiple=True, help="Listener name, e.g. http, https (repeat)."
)
@click.option("--tls", "tls_mode", type=click.Choice(["off", "acme", "manual"]), help="TLS mode.")
@click.option("--certificate", metavar="NAME|ID", help="Certificate (TLS mode manual).")
@click.option("--redirect-http", is_flag=True, default=None, help="Redirect plain HTTP to https.")
@click.option("--websocket", is_flag=True, default=None, help="Pass WebSocket upgrades.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--description", help="Free text.")
@workspace_option
@state_dir_option
@json_option
def create(
    name: str,
    server_names: tuple[str, ...],
    upstream_ref: str,
    path: str,
    entry_points: tuple[str, ...],
    tls_mode: str | None,
    certificate: str | None,
    redirect_http: bool | None,
    websocket: bool | None,
    disabled: bool,
    description: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Create virtual host NAME answering --server-name, proxying to --upstream."""
    with open_api(state_dir) as api:
        ws = resolve_workspace(api, workspace)
        body: dict[str, Any] = {
            "name": name,
            "server_names": list(server_names),
            "locations": [{"path": path, "upstream": _upstream_id(api, ws, upstream_ref)}],
        }
        tls = _tls(api, ws, tls_mode, certificate, redirect_http)
        if tls is not None:
            body["tls"] = tls
        if entry_points:
            body["entry_points"] = list(entry_points)
        elif tls is not None and tls["mode"] != "off":
            body["entry_points"] = ["http", "https"]
        if websocket is not None:
            body["websocket"] = websocket
        if disabled:
            body["enabled"] = False
        if description is not None:
            body["description"] = description
        created = api.post(_base(ws), body)
    if as_json:
        echo_json(created)
    else:
        click.echo(f"created virtual host {created['name']} ({created['id']})")


@vhost.command(name="list")
@click.option("--name", help="Only this name.")
@click.option("--server-name", help="Only virtual hosts answering this name.")
@click.option(
    "--upstream", "upstream_ref", metavar="NAME|ID", help="Only those using this upstream."
)
@workspace_option
@state_dir_option
@json_option
def list_(
    name: str | None,
    server_name: str | None,
    upstream_ref: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """List the workspace's virtual hosts."""
    with open_api(state_dir) as api:
        ws = resolve_workspace(api, workspace)
        upstream_id = _upstream_id(api, ws, upstream_ref) if upstream_ref else None
        listing = api.get(_base(ws), name=name, server_name=server_name, upstream=upstream_id)
        names = {}
        if not as_json:
            ups = api.get(f"/v1/workspaces/{ws['id']}/upstreams")["items"]
            names = {u["id"]: u["name"] for u in ups}
    warn_invalid(listing, "virtual host")
    items = listing["items"]
    if as_json:
        echo_json(items)
        return
    rows = []
    for v in items:
        used = [
            names.get(loc["upstream"], loc["upstream"])
            for loc in v["locations"]
            if loc.get("upstream")
        ]
        rows.append([v["name"], v["id"], v["server_names"], used, v["enabled"]])
    table(("NAME", "ID", "SERVER NAMES", "UPSTREAMS", "ENABLED"), rows)


@vhost.command()
@click.argument("vhost_ref", metavar="NAME|ID")
@workspace_option
@state_dir_option
@json_option
def show(vhost_ref: str, workspace: str | None, state_dir: Path, as_json: bool) -> None:
    """Show one virtual host."""
    with open_api(state_dir) as api:
        entity = resolve(api, _base(resolve_workspace(api, workspace)), vhost_ref, "virtual host")
    if as_json:
        echo_json(entity)
    else:
        describe(entity)


@vhost.command()
@click.argument("vhost_ref", metavar="NAME|ID")
@click.option("--name", "new_name", help="Rename.")
@click.option(
    "--server-name", "server_names", multiple=True, help="Replace the server names (repeat)."
)
@click.option("--add-server-name", "added", multiple=True, help="Add a server name.")
@click.option("--remove-server-name", "removed", multiple=True, help="Remove a server name.")
@click.option(
    "--upstream", "upstream_ref", metavar="NAME|ID", help="Proxy every proxy location here."
)
@click.option("--enable/--disable", "enabled", default=None, help="Serve it or not.")
@click.option("--description", help="Free text.")
@workspace_option
@state_dir_option
@json_option
def update(
    vhost_ref: str,
    new_name: str | None,
    server_names: tuple[str, ...],
    added: tuple[str, ...],
    removed: tuple[str, ...],
    upstream_ref: str | None,
    enabled: bool | None,
    description: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Change a virtual host: only the options given are changed."""
    if server_names and (added or removed):
        raise click.UsageError("--server-name replaces the list; do not mix it with --add/--remove")
    changes: dict[str, Any] = {
        k: v
        for k, v in {"name": new_name, "enabled": enabled, "description": description}.items()
        if v is not None
    }
    with open_api(state_dir) as api:
        ws = resolve_workspace(api, workspace)
        entity = resolve(api, _base(ws), vhost_ref, "virtual host")
        if server_names:
            changes["server_names"] = list(server_names)
        elif added or removed:
            kept = [n for n in entity["server_names"] if n not in removed]
            changes["server_names"] = kept + [n for n in added if n not in kept]
        if upstream_ref is not None:
            target = _upstream_id(api, ws, upstream_ref)
            locations = [
                {**loc, "upstream": target} if loc.get("action") == "proxy" else loc
                for loc in entity["locations"]
            ]
            changes["locations"] = locations
        if not changes:
            raise click.UsageError("nothing to change: give at least one option")
        updated = api.patch(f"{_base(ws)}/{entity['id']}", changes)
    if as_json:
        echo_json(updated)
    else:
        click.echo(f"updated virtual host {updated['name']} ({updated['id']})")


add_delete(
    vhost,
    "virtual host",
    lambda api, ws: _base(resolve_workspace(api, ws)),
    scoped=True,
    help_text="Delete a virtual host.",
)
