"""The rendered nginx configuration of the local node: its files, one shown highlighted.

The API has no endpoint for a node's rendered files, so this reads the applied tree
under ``<state-dir>/nginx/conf`` (read-only, this node only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

__all__ = ["ConfigViewer", "config_files", "config_label"]

MAX_BYTES = 2 * 1024 * 1024


def config_files(root: Path) -> list[str]:
    """Files under ``root`` (relative, ``nginx.conf`` first); OSError when unreadable."""
    files = sorted(
        str(p.relative_to(root))
        for p in root.resolve().rglob("*")
        if p.is_file() and p.name != "mime.types"
    )
    if "nginx.conf" in files:
        files.remove("nginx.conf")
        files.insert(0, "nginx.conf")
    return files


def config_label(name: str, names: Mapping[str, str]) -> str:
    """A file's label in the list: ``default: vhost shop`` for a virtual host's file
    (``names`` maps ``vhosts/<id>`` to names), else its path."""
    parts = PurePosixPath(name).parts
    if len(parts) == 3 and parts[0].endswith(".d") and not parts[1].startswith("_"):
        return f"{parts[1]}: {parts[2].removesuffix('.conf')}"
    if len(parts) == 4 and parts[2] in ("vhosts", "streams") and parts[3].endswith(".conf"):
        entity = parts[3].removesuffix(".conf")
        kind = parts[2].removesuffix("s")
        return f"{parts[1]}: {kind} {names.get(f'{parts[2]}/{entity}', entity)}"
    return name


class ConfigViewer(Horizontal):
    """A file list and the chosen file, syntax-highlighted."""

    def __init__(
        self, root: Path, names: Mapping[str, str] | None = None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="config-viewer")
        self.root = root
        self.names = names if names is not None else {}

    def compose(self) -> ComposeResult:
        yield OptionList(id="config-files")
        with VerticalScroll(id="config-scroll"):
            yield Static(id="config-text", markup=False)

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        files_list = self.query_one("#config-files", OptionList)
        text = self.query_one("#config-text", Static)
        try:
            files = config_files(self.root.resolve())
        except OSError as exc:
            files_list.display = False
            text.update(f"Cannot read the rendered configuration at {self.root}: {exc.strerror}")
            return
        if not files:
            files_list.display = False
            text.update(f"No rendered configuration under {self.root} yet.")
            return
        files_list.display = True
        chosen = files_list.highlighted
        files_list.clear_options()
        files_list.add_options([Option(config_label(n, self.names), id=n) for n in files])
        files_list.highlighted = chosen if chosen is not None and chosen < len(files) else 0

    @on(OptionList.OptionHighlighted, "#config-files")
    def _show(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id or ""
        self.query_one("#config-text", Static).update(self.file_content(name))

    def file_content(self, name: str) -> Content:
        path = self.root.resolve() / name
        try:
            with path.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            return Content(f"Cannot read {name}: {exc.strerror}")
        code = data[:MAX_BYTES].decode("utf-8", "replace")
        if len(data) > MAX_BYTES:
            code += "\n# ... (cut at 2 MiB)"
        return highlight(code, language="nginx", path=name)
