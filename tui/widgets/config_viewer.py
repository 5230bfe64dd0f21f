"""A node's applied nginx configuration: its files, one shown highlighted.

Both come from the API (``GET /v1/nodes/{name}/config``, then ``?path=`` for the file
chosen), for the node the console runs on and for any other node, which its daemon asks
over the mesh. Files of workspaces the console's node does not serve are not listed, and
shared files come with their lines about them hidden; a node that cannot be reached is
said so in place of the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.client import ApiClient, ApiError

__all__ = ["ConfigViewer", "config_label", "config_paths", "unreachable_text"]


def config_paths(listing: Mapping[str, Any]) -> list[str]:
    """The files of a ``/config`` answer worth showing, in its order (``nginx.conf``
    first), without ``mime.types``."""
    files = listing.get("files") or ()
    return [
        str(f["path"])
        for f in files
        if isinstance(f, dict) and f.get("path") and f.get("path") != "mime.types"
    ]


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


def unreachable_text(node: str, exc: ApiError) -> str:
    """What the console says when a node's report or files cannot be had: the API's
    detail (``node 'n4' cannot be reached: ...``)."""
    if exc.status == 503 and exc.message:
        return exc.message[:1].upper() + exc.message[1:]
    return f"Cannot read what {node} reports: {exc.message}"


class ConfigViewer(Horizontal):
    """A file list and the chosen file, syntax-highlighted, of node ``node``."""

    def __init__(
        self,
        api: ApiClient,
        node: str,
        names: Mapping[str, str] | None = None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="config-viewer")
        self.api = api
        self.node = node
        self.names = names if names is not None else {}
        self.paths: list[str] = []
        self.loaded = False
        """A listing (or the reason there is none) is on screen."""
        self.shown = ""
        """The path whose content is on screen."""

    @property
    def _url(self) -> str:
        return f"/v1/nodes/{quote(self.node, safe='')}/config"

    def compose(self) -> ComposeResult:
        yield OptionList(id="config-files")
        with VerticalScroll(id="config-scroll"):
            yield Static(id="config-note", markup=False)
            yield Static(id="config-text", markup=False)

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the file list again (the node applied a new tree)."""
        self.run_worker(self._load(), group="config-list", exclusive=True, exit_on_error=False)

    def relabel(self) -> None:
        """Names were learnt: label the files again."""
        if self.paths:
            self._fill(self.paths)

    def _note(self, message: str) -> None:
        """Say ``message`` in place of the files (empty: show the files)."""
        note = self.query_one("#config-note", Static)
        note.update(message)
        note.display = bool(message)
        self.query_one("#config-files", OptionList).display = not message
        if message:
            self.query_one("#config-text", Static).update("")
            self.shown = ""

    async def _load(self) -> None:
        try:
            listing = await self.api.get(self._url)
        except ApiError as exc:
            self.paths = []
            self._note(unreachable_text(self.node, exc))
            self.loaded = True
            return
        paths = config_paths(listing if isinstance(listing, dict) else {})
        self.paths = paths
        if not paths:
            self._note(f"{self.node} has applied no configuration yet.")
        else:
            self._note("")
            self.shown = ""  # a new tree: read the file again
            self._fill(paths)
        self.loaded = True

    def _fill(self, paths: list[str]) -> None:
        files_list = self.query_one("#config-files", OptionList)
        chosen = files_list.highlighted
        previous = files_list.get_option_at_index(chosen).id if chosen is not None else None
        files_list.clear_options()
        files_list.add_options([Option(config_label(p, self.names), id=p) for p in paths])
        # Highlighting opens the file (OptionHighlighted) unless it is already shown.
        files_list.highlighted = paths.index(previous) if previous in paths else 0

    @on(OptionList.OptionHighlighted, "#config-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        path = event.option.id or ""
        if path and path != self.shown:
            self._open(path)

    def _open(self, path: str) -> None:
        self.run_worker(self._show(path), group="config-file", exclusive=True, exit_on_error=False)

    async def _show(self, path: str) -> None:
        text = self.query_one("#config-text", Static)
        try:
            answer = await self.api.request("GET", self._url, params={"path": path})
        except ApiError as exc:
            text.update(unreachable_text(self.node, exc))
            self.shown = path
            return
        text.update(self.file_content(answer.get("file") if isinstance(answer, dict) else None))
        self.shown = path

    @staticmethod
    def file_content(file: Any) -> Content:
        """A file of a ``/config?path=`` answer, highlighted, with its notes."""
        if not isinstance(file, dict):
            return Content("No such file.")
        path = str(file.get("path", ""))
        code = str(file.get("content", ""))
        if file.get("truncated"):
            code += "\n# ... (cut at 1 MiB)"
        if file.get("redacted"):
            code = "# (lines of other workspaces hidden)\n" + code
        return highlight(code, language="nginx", path=path)
