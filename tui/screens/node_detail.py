"""One node in detail: what it publishes (state, version, nginx, apply, revision), and for
the node the console runs on also its status (last apply with nginx's message, quarantined
and degraded units, invalid entities, metrics endpoint) and its rendered configuration."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from tui.client import ApiError
from tui.constants import RENDERED_CONF
from tui.fleet import Member
from tui.screens.base import NxScreen
from tui.widgets.config_viewer import ConfigViewer

__all__ = ["NodeDetailScreen", "node_lines"]

REMOTE_NOTE = (
    "Quarantined units, nginx's message and the rendered files are known only to {name} "
    "itself: the API gives other nodes' published metadata only. Run `nxmesh tui` on {name}."
)


def node_lines(m: Member) -> list[str]:
    """What every node publishes, as lines."""
    lines = [
        f"{m.name}  {m.state}  {m.address or 'no address'}  key {m.key or '-'}",
        f"version {m.version or '-'} · nginx {m.nginx or '-'} · labels {m.labels_text}",
        f"apply {m.apply_text} · revision {m.revision or '-'} · state {m.digest or '-'}",
    ]
    if m.reason:
        lines.append(f"reason: {m.reason}")
    return lines


def local_lines(status: dict[str, Any], last_apply: dict[str, Any] | None,
                names: dict[str, str]) -> list[str]:  # fmt: skip
    """The local node's status and last apply (``GET /v1/status`` and the watch stream)."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted((status.get("members") or {}).items()))
    lines = [
        f"uptime {status.get('uptime_s', '-')} s · metrics {status.get('metrics', '-')} · "
        f"API watchers {(status.get('api') or {}).get('watchers', '-')}",
        f"workspaces {', '.join(status.get('workspaces') or ()) or '-'} · members {counts or '-'}",
    ]
    if last_apply is not None:
        summary = last_apply.get("summary") or last_apply.get("state")
        lines.append(f"last apply: {summary} (revision {last_apply.get('revision') or '-'})")
        message = str(last_apply.get("nginx_message") or "").strip()
        lines.append(f"nginx: {message}" if message else "nginx: no message")
    else:
        apply = status.get("apply") or {}
        lines.append(
            f"last apply: {apply.get('apply', '-')} (revision {apply.get('revision') or '-'})"
            " - nginx's message is shown from the next apply on (/v1/status lacks it)"
        )
    for q in status.get("quarantined") or ():
        unit = str(q.get("unit"))
        lines.append(f"quarantined {names.get(unit, unit)}: {q.get('reason')}")
    for unit, info in sorted((status.get("units") or {}).items()):
        lines.append(f"{info.get('state')} {names.get(unit, unit)}: {info.get('reason')}")
    for line in status.get("invalid") or ():
        lines.append(f"invalid {line}")
    return lines


class NodeDetailScreen(NxScreen):
    NAV = "overview"
    ADMIN_ACTIONS = frozenset({"revoke"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "revoke", "Revoke"),
        Binding("f", "focus_files", "Files", show=False),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.node_name = name
        self._revision = ""

    @property
    def is_local(self) -> bool:
        return self.node_name == self.nx.local_node

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="node-info"):
                yield Static("", id="node-meta", markup=False)
                yield Static("", id="node-local", markup=False)
            with Vertical(id="node-config"):
                yield Static("Rendered configuration", classes="panel-title")
                if self.is_local:
                    root = self.nx.state_dir / RENDERED_CONF
                    yield ConfigViewer(root, self.nx.names, id="config")
                else:
                    yield Static(
                        REMOTE_NOTE.format(name=self.node_name), id="config-note", markup=False
                    )

    def on_mount(self) -> None:
        self.nx.fleet_changed.subscribe(self, lambda _none: self.show())
        self.show()
        if self.is_local:
            self.run_worker(self._name_files(), exit_on_error=False)

    async def _name_files(self) -> None:
        """Learn the virtual hosts' names, so the file list can say which is which."""
        try:
            await self.nx.load("vhosts")
        except ApiError:
            return
        for viewer in self.query(ConfigViewer):
            viewer.reload()
        self.show()

    def show(self) -> None:
        app = self.nx
        member = app.member(self.node_name)
        meta = self.query_one("#node-meta", Static)
        if member is None:
            meta.update(f"{self.node_name} is not a member (any more).")
            return
        meta.update("\n".join(node_lines(member)))
        local = self.query_one("#node-local", Static)
        if self.is_local:
            lines = local_lines(app.status, app.last_apply, app.unit_names())
            local.update("\n".join(lines))
            if member.revision != self._revision:
                self._revision = member.revision
                for viewer in self.query(ConfigViewer):
                    viewer.reload()
        else:
            local.update("")

    def action_revoke(self) -> None:
        if self.is_local:
            self.notify("This is the node the console talks to; revoke it from another node.")
            return
        self.nx.open_revoke(self.node_name)

    def action_focus_files(self) -> None:
        for files in self.query("#config-files"):
            files.focus()
