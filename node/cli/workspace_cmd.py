"""``nxmesh workspace ...`` and ``nxmesh org ...``: the mesh document's containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli.client import ApiError
from node.cli.common import (
    add_delete,
    describe,
    echo_json,
    json_option,
    only_given,
    open_api,
    report,
    resolve,
    state_dir_option,
    table,
    warn_invalid,
)

ORGS = "/v1/organizations"
WORKSPACES = "/v1/workspaces"


# -- organizations --------------------------------------------------------------------------


@click.group()
def org() -> None:
    """Organizations: they own workspaces (admin role)."""


@org.command()
@click.argument("name")
@click.option("--description", help="Free text.")
@state_dir_option
@json_option
def create(name: str, description: str | None, state_dir: Path, as_json: bool) -> None:
    """Create organization NAME."""
    body: dict[str, Any] = {"name": name}
    if description is not None:
        body["description"] = description
    with open_api(state_dir) as api:
        report(api.post(ORGS, body), as_json, "created", "organization")


@org.command(name="list")
@click.option("--name", help="Only this name.")
@state_dir_option
@json_option
def org_list(name: str | None, state_dir: Path, as_json: bool) -> None:
    """List organizations."""
    with open_api(state_dir) as api:
        listing = api.get(ORGS, name=name)
    warn_invalid(listing, "organization")
    if as_json:
        echo_json(listing["items"])
    else:
        table(
            ("NAME", "ID", "DESCRIPTION"),
            ([o["name"], o["id"], o["description"]] for o in listing["items"]),
        )


@org.command(name="show")
@click.argument("ref", metavar="NAME|ID")
@state_dir_option
@json_option
def org_show(ref: str, state_dir: Path, as_json: bool) -> None:
    """Show one organization."""
    with open_api(state_dir) as api:
        entity = resolve(api, ORGS, ref, "organization")
    echo_json(entity) if as_json else describe(entity)


@org.command(name="update")
@click.argument("ref", metavar="NAME|ID")
@click.option("--name", "new_name", help="Rename.")
@click.option("--description", help="Free text.")
@state_dir_option
@json_option
def org_update(
    ref: str, new_name: str | None, description: str | None, state_dir: Path, as_json: bool
) -> None:
    """Rename an organization or change its description."""
    changes = only_given(name=new_name, description=description)
    with open_api(state_dir) as api:
        entity = resolve(api, ORGS, ref, "organization")
        report(api.patch(f"{ORGS}/{entity['id']}", changes), as_json, "updated", "organization")


add_delete(
    org,
    "organization",
    lambda _api, _ws: ORGS,
    scoped=False,
    help_text="Delete an organization (refused while it has workspaces).",
)


# -- workspaces -----------------------------------------------------------------------------


@click.group()
def workspace() -> None:
    """Workspaces: each holds virtual hosts, upstreams and the rest (admin role to change)."""


@workspace.command(name="create")
@click.argument("name")
@click.option("--organization", "org_ref", metavar="NAME|ID", help="Owner (default: the only one).")
@click.option("--description", help="Free text.")
@state_dir_option
@json_option
def ws_create(
    name: str, org_ref: str | None, description: str | None, state_dir: Path, as_json: bool
) -> None:
    """Create workspace NAME."""
    with open_api(state_dir) as api:
        if org_ref:
            owner = resolve(api, ORGS, org_ref, "organization")
        else:
            orgs = api.get(ORGS)["items"]
            if len(orgs) != 1:
                hint = (
                    "create one with `nxmesh org create NAME`"
                    if not orgs
                    else "choose one with --organization"
                )
                raise ApiError(f"{len(orgs)} organizations: {hint}")
            owner = orgs[0]
        body: dict[str, Any] = {"name": name, "organization": owner["id"]}
        if description is not None:
            body["description"] = description
        report(api.post(WORKSPACES, body), as_json, "created", "workspace")


@workspace.command(name="list")
@click.option("--name", help="Only this name.")
@click.option("--organization", "org_ref", metavar="NAME|ID", help="Only this organization's.")
@state_dir_option
@json_option
def ws_list(name: str | None, org_ref: str | None, state_dir: Path, as_json: bool) -> None:
    """List workspaces."""
    with open_api(state_dir) as api:
        owner = resolve(api, ORGS, org_ref, "organization")["id"] if org_ref else None
        listing = api.get(WORKSPACES, name=name, organization=owner)
        orgs = {} if as_json else {o["id"]: o["name"] for o in api.get(ORGS)["items"]}
    warn_invalid(listing, "workspace")
    if as_json:
        echo_json(listing["items"])
        return
    rows = (
        [w["name"], w["id"], orgs.get(w["organization"], w["organization"])]
        for w in listing["items"]
    )
    table(("NAME", "ID", "ORGANIZATION"), rows)


@workspace.command(name="show")
@click.argument("ref", metavar="NAME|ID")
@state_dir_option
@json_option
def ws_show(ref: str, state_dir: Path, as_json: bool) -> None:
    """Show one workspace."""
    with open_api(state_dir) as api:
        entity = resolve(api, WORKSPACES, ref, "workspace")
    echo_json(entity) if as_json else describe(entity)


@workspace.command(name="update")
@click.argument("ref", metavar="NAME|ID")
@click.option("--name", "new_name", help="Rename.")
@click.option("--description", help="Free text.")
@state_dir_option
@json_option
def ws_update(
    ref: str, new_name: str | None, description: str | None, state_dir: Path, as_json: bool
) -> None:
    """Rename a workspace or change its description."""
    changes = only_given(name=new_name, description=description)
    with open_api(state_dir) as api:
        entity = resolve(api, WORKSPACES, ref, "workspace")
        report(api.patch(f"{WORKSPACES}/{entity['id']}", changes), as_json, "updated", "workspace")


add_delete(
    workspace,
    "workspace",
    lambda _api, _ws: WORKSPACES,
    scoped=False,
    help_text="Delete a workspace (refused while it holds anything).",
)
