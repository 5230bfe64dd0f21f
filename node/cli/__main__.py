"""``python -m node.cli``: the nxmesh command."""

from node.cli.main import run

run()
