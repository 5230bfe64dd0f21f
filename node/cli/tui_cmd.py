"""``nxmesh tui``: the Textual console, started as its own process (``python -m tui``).

The console is asyncio and speaks only HTTP to the API; ``node`` never imports ``tui``
(docs/architecture.md), so this command replaces itself with the console's process. It
imports nothing heavy on the way (not even the CLI's API client): start-up time counts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

DEFAULT_STATE_DIR = Path("/var/lib/nxmesh")
"""As ``node.cli.common.DEFAULT_STATE_DIR``, which this module does not import: that
module brings the synchronous API client (httpx) the console does not need here."""


@click.command()
@click.option(
    "--state-dir",
    envvar="NXMESH_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="The node's state directory (its API socket is api.sock there); env NXMESH_STATE_DIR.",
)
def tui(state_dir: Path) -> None:
    """Open the terminal console on a node's API: the whole fleet, live."""
    argv = [sys.executable, "-m", "tui", "--state-dir", str(state_dir)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as exc:
        raise click.ClickException(f"cannot start the console: {exc.strerror or exc}") from None
