"""Where things are, for tests that run the project's own commands."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NXMESH = VENV_BIN / "nxmesh"
