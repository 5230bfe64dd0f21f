"""Suite-wide set-up.

- trio is the default test mode (``trio_mode = true``); Textual's asyncio tests are plain
  functions that call :func:`tests.support.asyncio_run.run_asyncio`.
- Tests marked ``nginx``, ``pebble``, ``serf`` or ``netns`` need real parts. When a part is
  missing the test *fails* with the command that installs it: nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIREMENTS: dict[str, tuple[str, str]] = {
    # marker: (binary, how to get it)
    "nginx": ("nginx", "apt-get install nginx (scripts/test does this)"),
    "pebble": ("pebble", "apt-get install pebble (scripts/test does this)"),
    "serf": ("serf", "apt-get install serf (scripts/test does this)"),
    "netns": ("ip", "run as root with iproute2 and iptables installed"),
}


def _find(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/bin")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (binary, how) in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is None:
            continue
        if _find(binary) is None:
            pytest.fail(f"this test needs {binary!r}, which is not installed: {how}", pytrace=False)
        if marker == "netns" and os.geteuid() != 0:
            pytest.fail("network-namespace tests need root", pytrace=False)
