"""``nxmesh version``: what is installed, for bug reports."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import click

from node.version import __version__

PARTS = ("trio", "msgpack", "pynacl", "pycrdt", "jinja2", "acme", "prometheus-client", "textual")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def version(as_json: bool) -> None:
    """Show versions of NxMesh, Python and the libraries it is built on."""
    info: dict[str, str] = {"nxmesh": __version__, "python": platform.python_version()}
    for part in PARTS:
        try:
            info[part] = metadata.version(part)
        except metadata.PackageNotFoundError:
            info[part] = "missing"
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    width = max(map(len, info))
    for name, ver in info.items():
        click.echo(f"{name:<{width}}  {ver}")
