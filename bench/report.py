"""Helpers shared by benchmarks: summary statistics and the final JSON line."""

from __future__ import annotations

import json
import math
import platform
import sys
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; ``values`` must not be empty."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def machine() -> str:
    """One line naming the machine the figures come from."""
    return f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}"


def progress(message: str) -> None:
    """A line for the human watching; never part of the result."""
    print(message, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last line of stdout."""
    print(json.dumps(result, sort_keys=False), flush=True)
