"""``nxmesh audit``: who created, changed or deleted what, newest first."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import (
    echo_json,
    json_option,
    open_api,
    resolve_workspace,
    state_dir_option,
    table,
    workspace_option,
)

RESOURCES = ("vhosts", "upstreams", "streams", "certificates", "access-lists")


@click.command()
@click.option(
    "--mesh",
    is_flag=True,
    help="Organizations and workspaces (the mesh document) instead of a workspace's content.",
)
@click.option(
    "--resource",
    type=click.Choice([*RESOURCES, "organizations", "workspaces"]),
    help="Only edits of this kind.",
)
@click.option("--user", help="Only edits by this user.")
@workspace_option
@state_dir_option
@json_option
def audit(
    mesh: bool,
    resource: str | None,
    user: str | None,
    workspace: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """The last edits of a workspace (or, with --mesh, of organizations and workspaces):
    when, what, and who - user, role and the node the edit came through."""
    with open_api(state_dir) as api:
        if mesh:
            path = "/v1/audit"
        else:
            path = f"/v1/workspaces/{resolve_workspace(api, workspace)['id']}/audit"
        items = api.get(path, resource=resource, user=user)["items"]
    if as_json:
        echo_json(items)
        return
    table(
        ("WHEN", "OP", "WHAT", "BY", "VIA"),
        (
            [
                i.get("changed_at"),
                i.get("op"),
                f"{i.get('resource')} {i.get('name') or i.get('id')}",
                f"{i['changed_by'].get('user')} ({i['changed_by'].get('role')})",
                i["changed_by"].get("node"),
            ]
            for i in items
        ),
    )
