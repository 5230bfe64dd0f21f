"""``python -m tui [--state-dir DIR]``: the console as its own process (what ``nxmesh
tui`` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tui.constants import DEFAULT_STATE_DIR, STATE_DIR_ENV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nxmesh tui", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR),
        help="the node's state directory (its API socket is api.sock there)",
    )
    args = parser.parse_args(argv)
    # The console runs on asyncio only. httpcore imports trio whenever it is installed
    # (the daemon needs it) just to serve trio callers: a tenth of a second or more of
    # start-up for nothing. A None entry makes that import fail, as if trio were absent.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    from tui.app import run

    return run(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
