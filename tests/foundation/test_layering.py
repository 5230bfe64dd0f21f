"""The import-layering contract holds, and a violation of it is caught."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO, VENV_BIN

PACKAGES = ("mesh", "crdt", "render", "node", "tui")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, safe to break."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_its_contracts(tree: Path) -> None:
    out = lint_imports(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" not in out.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("mesh/_violation.py", "import node\n", "mesh imports nothing of the project"),
        ("tui/_violation.py", "import crdt\n", "tui speaks HTTP only"),
        ("render/_violation.py", "import node\n", "render uses crdt's schema models only"),
        ("crdt/_violation.py", "import render\n", "crdt uses only mesh's public interface"),
        ("crdt/_violation.py", "import mesh._private\n", "not its modules"),
        ("render/_violation.py", "import crdt._store\n", "render uses crdt's schema models only"),
        ("render/_violation.py", "import pycrdt\n", "render uses crdt's schema models only"),
        ("crdt/schema/_violation.py", "import crdt._store\n", "crdt.schema is plain"),
    ],
)
def test_a_violation_breaks_the_check(tree: Path, module: str, source: str, contract: str) -> None:
    # Stand-ins for private modules the violations reach for.
    (tree / "mesh" / "_private.py").write_text("")
    (tree / "crdt" / "_store.py").write_text("")
    (tree / module).write_text(source)
    out = lint_imports(tree)
    assert out.returncode != 0
    assert contract in out.stdout


def test_render_may_use_the_schema_models(tree: Path) -> None:
    (tree / "render" / "_uses_schema.py").write_text("from crdt.schema import __doc__\n")
    out = lint_imports(tree)
    assert out.returncode == 0, out.stdout
