"""One node in detail, any node: what it publishes (state, version, nginx, apply,
revision), its report (``GET /v1/nodes/{name}/status``: the last apply with nginx's
message, quarantined and degraded units, invalid entities, a metrics summary) and its
rendered configuration (``GET /v1/nodes/{name}/config``). Another node's report and files
come from that node over the mesh; when it cannot be reached the screen says so. For the
node the console runs on, its own status too (uptime, metrics endpoint, members)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from tui.client import ApiError
from tui.events_log import unit_key
from tui.fleet import Member
from tui.screens.base import NxScreen
from tui.timefmt import ago
from tui.widgets.config_viewer import ConfigViewer, unreachable_text

__all__ = ["NodeDetailScreen", "local_lines", "node_lines", "report_lines"]

FILTERED_NOTE = "(what belongs to workspaces this node does not serve is left out)"


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


def local_lines(status: Mapping[str, Any]) -> list[str]:
    """The console's own node: what ``GET /v1/status`` adds (uptime, members...)."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted((status.get("members") or {}).items()))
    return [
        f"uptime {status.get('uptime_s', '-')} s · metrics {status.get('metrics', '-')} · "
        f"API watchers {(status.get('api') or {}).get('watchers', '-')}",
        f"workspaces {', '.join(status.get('workspaces') or ()) or '-'} · members {counts or '-'}",
    ]


def _unit(unit: str, names: Mapping[str, str]) -> str:
    return names.get(unit_key(unit)) or unit


def _size(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def report_lines(report: Mapping[str, Any], names: Mapping[str, str], now: float) -> list[str]:
    """A node's report (``/v1/nodes/{name}/status``) as lines; ``names`` maps
    ``vhosts/<id>`` to names."""
    last = report.get("last_apply") or {}
    head = f"last apply: {last.get('state') or '-'} · revision {last.get('revision') or '-'}"
    if last.get("duration_s"):
        head += f" · took {float(last['duration_s']):.2f} s"
    if last.get("applied_at"):
        head += f" · applied {ago(now - float(last['applied_at']))}"
    lines = [head]
    if last.get("state") == "failed":
        lines.append(f"failed at {last.get('stage') or '-'}: {last.get('reason') or '-'}")
    message = str(last.get("nginx_message") or "").strip()
    if message:
        lines.append("nginx's message:")
        lines.extend(f"  {line}" for line in message.splitlines())
    else:
        lines.append("nginx's message: none")
    for drifted in last.get("drift") or ():
        lines.append(f"restored after a change by hand: {drifted}")
    for q in report.get("quarantined") or ():
        if isinstance(q, dict):
            lines.append(f"quarantined {_unit(str(q.get('unit')), names)}: {q.get('reason')}")
    for unit, info in sorted((report.get("units") or {}).items()):
        if isinstance(info, dict):
            lines.append(f"{info.get('state')} {_unit(unit, names)}: {info.get('reason')}")
    lines.extend(f"invalid {line}" for line in report.get("invalid") or ())
    m = report.get("metrics") or {}
    if m:
        lines.append(
            f"reloads {m.get('reloads_ok', 0)} ok, {m.get('reloads_failed', 0)} failed, "
            f"{m.get('reloads_rolled_back', 0)} rolled back · applies {m.get('applies', 0)}, "
            f"{m.get('apply_failures', 0)} failed · nginx {'up' if m.get('nginx_up') else 'down'}"
        )
        lines.append(
            f"mesh {m.get('mesh_datagrams_in', 0)} datagrams in, "
            f"{m.get('mesh_datagrams_out', 0)} out, {m.get('mesh_drops', 0)} dropped · "
            f"{m.get('documents', 0)} documents, {_size(int(m.get('document_bytes', 0)))}"
        )
    if report.get("filtered"):
        lines.append(FILTERED_NOTE)
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
        self.report: dict[str, Any] | None = None
        self.report_error = ""
        """Why there is no report (the node cannot be reached...), or empty."""
        self._published: tuple[str, ...] | None = None

    @property
    def is_local(self) -> bool:
        return self.node_name == self.nx.local_node

    @property
    def loaded(self) -> bool:
        """The report (or why there is none) and the file list are on screen."""
        viewers = self.query(ConfigViewer)
        got_report = self.report is not None or bool(self.report_error)
        return got_report and bool(viewers) and viewers.first().loaded

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="node-info"):
                yield Static("", id="node-meta", markup=False)
                yield Static("", id="node-local", markup=False)
                yield Static("reading the node's report...", id="node-report", markup=False)
            with Vertical(id="node-config"):
                yield Static("Rendered configuration", classes="panel-title")
                yield ConfigViewer(self.nx.api, self.node_name, self.nx.names, id="config")

    def on_mount(self) -> None:
        self.nx.fleet_changed.subscribe(self, lambda _none: self.show())
        self.show()
        self.run_worker(self._name_files(), exit_on_error=False)

    async def _name_files(self) -> None:
        """Learn the virtual hosts' names, so that files and units are named."""
        try:
            await self.nx.load("vhosts")
        except ApiError:
            return
        self.query_one(ConfigViewer).relabel()
        self.show()

    def _reload(self) -> None:
        self.run_worker(self._load_report(), group="report", exclusive=True, exit_on_error=False)
        self.query_one(ConfigViewer).reload()

    async def _load_report(self) -> None:
        try:
            report = await self.nx.api.get(f"/v1/nodes/{quote(self.node_name, safe='')}/status")
        except ApiError as exc:
            self.report, self.report_error = None, unreachable_text(self.node_name, exc)
        else:
            self.report = report if isinstance(report, dict) else {}
            self.report_error = ""
        self._show_report()

    def _show_report(self) -> None:
        widget = self.query_one("#node-report", Static)
        if self.report_error:
            widget.update(self.report_error)
        elif self.report is not None:
            widget.update("\n".join(report_lines(self.report, self.nx.names, self.nx.clock())))

    def show(self) -> None:
        if not self.query("#node-meta"):
            return  # not composed yet, or being torn down
        app = self.nx
        member = app.member(self.node_name)
        meta = self.query_one("#node-meta", Static)
        if member is None:
            meta.update(f"{self.node_name} is not a member (any more).")
        else:
            meta.update("\n".join(node_lines(member)))
        local = self.query_one("#node-local", Static)
        local.update("\n".join(local_lines(app.status)) if self.is_local else "")
        local.display = self.is_local
        # What the node publishes changed (a new tree, an apply failed...): read again.
        published = (
            (member.state, member.revision, member.apply, member.reason, str(member.quarantined))
            if member is not None
            else ()
        )
        if published != self._published:
            self._published = published
            self._reload()
        else:
            self._show_report()

    def action_revoke(self) -> None:
        if self.is_local:
            self.notify("This is the node the console talks to; revoke it from another node.")
            return
        self.nx.open_revoke(self.node_name)

    def action_focus_files(self) -> None:
        for files in self.query("#config-files"):
            files.focus()
