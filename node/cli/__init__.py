"""The ``nxmesh`` command line.

Start-up time matters (operators run it in loops and scripts), so subcommands are
registered by import path in :mod:`node.cli.registry` and imported only when invoked.
"""

from node.cli.main import main as main
from node.cli.main import run as run
