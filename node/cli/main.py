"""Entry point of the ``nxmesh`` console script."""

from __future__ import annotations

import os
import sys

import click

from node.cli.lazy import LazyGroup
from node.cli.registry import COMMANDS
from node.version import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings=CONTEXT_SETTINGS,
)
@click.version_option(
    __version__, "-V", "--version", prog_name="nxmesh", message="%(prog)s %(version)s"
)
def cli() -> None:
    """NxMesh runs a fleet of nginx servers with no central master.

    Every node runs one daemon that owns its local nginx and holds the whole desired
    state; any node accepts an edit and every node converges.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors end as one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(args=argv, prog_name="nxmesh", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.UsageError as err:
        # One line, like every other error: the message and where to find help.
        where = err.ctx.command_path if err.ctx is not None else "nxmesh"
        message = " ".join(err.format_message().split())
        click.echo(f"Error: {message} (see '{where} --help')", err=True)
        return err.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("nxmesh: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `nxmesh ... | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if os.environ.get("NXMESH_DEBUG"):
            raise
        click.echo(f"nxmesh: error: {err} (set NXMESH_DEBUG=1 for a traceback)", err=True)
        return 1
    return 0


def run() -> None:
    """Console-script entry: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":
    run()
