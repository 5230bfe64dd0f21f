"""What the CRUD commands share: options, name-or-id resolution, output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from node.cli.client import Api, ApiError

__all__ = [
    "DEFAULT_STATE_DIR",
    "add_delete",
    "changed_line",
    "describe",
    "echo_json",
    "json_option",
    "only_given",
    "open_api",
    "report",
    "resolve",
    "resolve_workspace",
    "state_dir_option",
    "table",
    "workspace_option",
]

DEFAULT_STATE_DIR = Path("/var/lib/nxmesh")
F = TypeVar("F", bound=Callable[..., Any])


def state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        envvar="NXMESH_STATE_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_STATE_DIR,
        show_default=True,
        help="The node's state directory (its API socket is api.sock there); env NXMESH_STATE_DIR.",
    )(f)


def workspace_option(f: F) -> F:
    return click.option(
        "-w",
        "--workspace",
        envvar="NXMESH_WORKSPACE",
        metavar="NAME|ID",
        help="Workspace (env NXMESH_WORKSPACE); default: the only one, else 'default'.",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def open_api(state_dir: Path) -> Api:
    return Api(state_dir)


def resolve(api: Api, base: str, ref: str, what: str) -> dict[str, Any]:
    """The entity under ``base`` whose name or id is ``ref``."""
    named = api.get(base, name=ref)["items"]
    if len(named) == 1:
        return dict(named[0])
    if len(named) > 1:
        ids = ", ".join(e["id"] for e in named)
        raise ApiError(f"{len(named)} {what}s are named {ref!r}; give the id ({ids})")
    try:
        return dict(api.get(f"{base}/{ref}"))
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(f"no {what} is named {ref!r} or has that id") from None
        raise


def resolve_workspace(api: Api, ref: str | None) -> dict[str, Any]:
    """``ref`` (name or id), else the only workspace, else the one named 'default'."""
    if ref:
        return resolve(api, "/v1/workspaces", ref, "workspace")
    items = api.get("/v1/workspaces")["items"]
    if len(items) == 1:
        return dict(items[0])
    if not items:
        raise ApiError("there is no workspace yet: create one with `nxmesh workspace create NAME`")
    defaults = [w for w in items if w.get("name") == "default"]
    if len(defaults) == 1:
        return dict(defaults[0])
    names = ", ".join(sorted(str(w.get("name")) for w in items))
    raise ApiError(f"several workspaces ({names}): choose one with --workspace or NXMESH_WORKSPACE")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Aligned columns; the last column is not padded."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def changed_line(entity: dict[str, Any]) -> str:
    """``alice (operator) via n1 at 2025-06-01T12:00:00.000Z``, or ``-`` when unknown."""
    by = entity.get("changed_by")
    at = entity.get("changed_at")
    if not isinstance(by, dict):
        return f"at {at}" if at else "-"
    text = f"{by.get('user', '?')} ({by.get('role', '?')}) via {by.get('node', '?')}"
    return f"{text} at {at}" if at else text


_STAMP = ("changed_by", "changed_at")


def describe(entity: dict[str, Any], order: Sequence[str] = ("name", "id")) -> None:
    """Fields one per line; lists of objects as indented ``key=value`` lines; who changed
    it last (``changed_by``, ``changed_at``) as one ``changed`` line at the end."""
    original = entity
    stamped = any(k in entity for k in _STAMP)
    entity = {k: v for k, v in entity.items() if k not in _STAMP}
    keys = [k for k in order if k in entity] + [k for k in entity if k not in order]
    width = max((len(k) for k in [*keys, *(["changed"] if stamped else [])]), default=0)
    for key in keys:
        value = entity[key]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            click.echo(f"{key}:")
            for item in value:
                shown = {k: v for k, v in item.items() if v is not None and v != {}}
                click.echo("  - " + " ".join(f"{k}={_scalar(v)}" for k, v in shown.items()))
        elif isinstance(value, list):
            click.echo(f"{key:<{width}}  {', '.join(_scalar(v) for v in value) or '-'}")
        elif isinstance(value, dict) and value:
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {_scalar(v)}")
        else:
            empty = value is None or value == {} or value == ""
            click.echo(f"{key:<{width}}  {'-' if empty else _scalar(value)}")
    if stamped:
        click.echo(f"{'changed':<{width}}  {changed_line(original)}")


def warn_invalid(listing: dict[str, Any], what: str) -> None:
    bad = listing.get("invalid") or []
    if bad:
        ids = ", ".join(str(b.get("id")) for b in bad)
        click.echo(f"warning: {len(bad)} stored {what}(s) do not validate: {ids}", err=True)


def report(entity: dict[str, Any], as_json: bool, verb: str, what: str) -> None:
    """After a write: the entity as JSON, or one line such as ``created upstream app (id)``."""
    if as_json:
        echo_json(entity)
    else:
        click.echo(f"{verb} {what} {entity['name']} ({entity['id']})")


def only_given(**values: Any) -> dict[str, Any]:
    """The options actually given; a usage error when there are none."""
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    return changes


def add_delete(
    group: click.Group,
    what: str,
    base: Callable[[Api, str | None], str],
    *,
    scoped: bool,
    help_text: str,
    name: str = "delete",
) -> None:
    """Add ``GROUP delete NAME|ID`` for the collection at ``base(api, workspace)``;
    ``scoped``: the collection is in a workspace (adds ``--workspace``)."""

    def delete(ref: str, state_dir: Path, workspace: str | None = None) -> None:
        with open_api(state_dir) as api:
            collection = base(api, workspace)
            entity = resolve(api, collection, ref, what)
            api.delete(f"{collection}/{entity['id']}")
        click.echo(f"deleted {what} {entity['name']} ({entity['id']})")

    command = state_dir_option(delete)
    if scoped:
        command = workspace_option(command)
    command = click.argument("ref", metavar="NAME|ID")(command)
    group.command(name=name, help=help_text)(command)
