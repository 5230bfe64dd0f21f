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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist's work stealing, spread the ``slow`` tests over the workers.

    The scheduler first hands each worker a contiguous share of the collection, and a
    worker keeps its running test and the next one out of reach of stealing. Left in
    collection order, the two 1,000-node simulations (minutes each) sit side by side in
    one share and run one after the other. Put the slow tests at the front of the shares,
    dealt round-robin, so they start at once on different workers.
    """
    workers = getattr(config.option, "numprocesses", None)
    if not isinstance(workers, int) or workers < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for k, item in enumerate(slow):
        shares[k % workers].append(item)
    # The scheduler's split: share i gets len // (workers - i) of what is left.
    sizes = []
    left = len(items)
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    fill = iter(rest)
    for share, size in zip(shares, sizes, strict=True):
        while len(share) < size:
            nxt = next(fill, None)
            if nxt is None:
                break
            share.append(nxt)
    items[:] = [item for share in shares for item in share] + list(fill)
