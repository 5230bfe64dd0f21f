"""``render()``: desired state + this node's view -> nginx files + revision.

Layout under ``prefix/conf`` (every path a unit owns holds only that unit)::

    nginx.conf                         main context, http{} globals, explicit includes
    mime.types
    http.d/_tls.conf                   map $ssl_server_name -> certificate id
    http.d/_default.conf               default servers; one TLS server per https address
    http.d/_redirect.conf              shared HTTP -> HTTPS redirect servers
    http.d/<ws>/upstreams.conf         upstreams the workspace's rendered vhosts use
    http.d/<ws>/vhosts/<id>.conf       one vhost (unit <ws>/vhost/<id>)
    stream.d/<ws>/upstreams.conf
    stream.d/<ws>/streams/<id>.conf    one stream proxy (unit <ws>/stream/<id>)

Shared files are built only from units that rendered, so rendering again with a unit in
``exclude`` removes every trace of it.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from crdt.schema import MeshSettings, WorkspaceState, validate_references
from crdt.schema.names import check_entity_id
from render import quoting
from render.access import deny_variable, geo_entries
from render.blocks import STANDARD_PROXY_HEADERS, Header, HttpsAnchor, RedirectServer
from render.listens import BoundEntryPoint, bind_entry_points, check_listen
from render.model import Listen, NodeView, Rendered, UnitStatus
from render.sizing import hash_size
from render.streams import plan_stream
from render.templates import macro, template
from render.tls import FALLBACK_CERT, ambiguous_certificates
from render.upstreams import UNUSABLE, UpstreamPlan, plan_upstream, upstream_name
from render.vhosts import NODE_HEADER, SharedHttp, VhostContext, VhostPlan, plan_vhost

__all__ = ["render", "revision_of"]

_NOT_SAFE = "cannot be rendered safely: "
_UNIT_ERRORS = (ValueError, TypeError, LookupError)
"""What a unit that cannot be rendered raises: Unrenderable (a ValueError) from the
quoting filters, or a wrong type or missing key in a model a peer's bug could produce
(render does not validate models again). It costs that unit, not the tree."""


@dataclass(frozen=True)
class _Paths:
    prefix: str
    certificates_dir: str
    acme_dir: str

    @cached_property
    def acme_location(self) -> str:
        """The challenge location, rendered once (acme.j2) and placed in every plain-HTTP
        server block."""
        return template("acme.j2").render(acme_dir=self.acme_dir).rstrip("\n")


def _paths(view: NodeView) -> _Paths:
    """The view's directories, checked once: a bad node view fails the whole render."""

    def directory(value: str, what: str) -> str:
        try:
            quoting.path(value)
        except quoting.Unrenderable as exc:
            raise ValueError(f"node view: {what}: {exc}") from None
        return value.rstrip("/") or "/"

    prefix = directory(view.prefix, "prefix")
    return _Paths(
        prefix=prefix,
        certificates_dir=directory(view.certificates_dir or f"{prefix}/certs", "certificates_dir"),
        acme_dir=directory(view.acme_challenge_dir or f"{prefix}/acme", "acme_challenge_dir"),
    )


def _check_view(view: NodeView) -> None:
    checks: list[tuple[str, Callable[[], object]]] = [
        ("node", lambda: quoting.quote(view.node)),
        ("stream_address", lambda: check_listen(Listen(view.stream_address, 1), "stream")),
    ]
    if view.user is not None:
        checks.append(("user", lambda: quoting.ident(view.user)))
    if view.stream_module:
        checks.append(("stream_module", lambda: quoting.path(view.stream_module)))
    for what, check in checks:
        try:
            check()
        except ValueError as exc:
            raise ValueError(f"node view: {what}: {exc}") from None


def revision_of(files: Mapping[str, bytes]) -> str:
    """sha256 over the files sorted by path; lengths framed so no two trees collide."""
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        name = path.encode()
        digest.update(b"%d:%s:%d:" % (len(name), name, len(data)))
        digest.update(data)
    return digest.hexdigest()


def _problems(
    state: WorkspaceState, settings: MeshSettings
) -> tuple[WorkspaceState, dict[tuple[str, str], str]]:
    """The workspace without entities that break references, and why each was dropped.

    Dropping an entity can break references to it, so this repeats until nothing changes.
    """
    reasons: dict[tuple[str, str], list[str]] = {}
    for _ in range(8):
        problems = validate_references(state, settings)
        if not problems:
            break
        for p in problems:
            reasons.setdefault((p.collection, p.id), []).append(f"{p.field}: {p.reason}")
        state = state.without(problems)
    return state, {key: "; ".join(why) for key, why in reasons.items()}


class _Upstreams:
    """Upstream plans of one workspace, each planned and rendered at most once."""

    def __init__(self, workspace: str, state: WorkspaceState, view: NodeView, stream: bool) -> None:
        self.workspace = workspace
        self.state = state
        self.view = view
        self.stream = stream
        self.plans: dict[str, UpstreamPlan] = {}
        self.blocks: dict[str, str] = {}

    def __call__(self, ident: str) -> UpstreamPlan:
        plan = self.plans.get(ident)
        if plan is None:
            plan = self._plan(ident)
            self.plans[ident] = plan
        return plan

    def _plan(self, ident: str) -> UpstreamPlan:
        upstream = self.state.upstreams[ident]
        try:
            plan = plan_upstream(self.workspace, upstream, self.view.resolved)
            if plan.usable:
                self.blocks[ident] = macro("upstream.conf.j2", "upstream")(plan, self.stream)
        except _UNIT_ERRORS as exc:
            return UpstreamPlan(
                name=upstream_name(self.workspace, ident),
                method=upstream.method,
                hash_key=None,
                consistent=False,
                servers=(),
                keepalive=0,
                keepalive_timeout=None,
                next_upstream=upstream.next_upstream,
                usable=False,
                notes=(_NOT_SAFE + str(exc),),
                unusable=UNUSABLE["unsafe"],
            )
        return plan

    def text(self, used: set[str]) -> str:
        return "".join(self.blocks[i] for i in sorted(used) if i in self.blocks)


_OK = UnitStatus("ok")


def _status(notes: tuple[str, ...] | list[str]) -> UnitStatus:
    return UnitStatus("degraded", "; ".join(notes)) if notes else _OK


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold off the cyclic garbage collector while rendering.

    A 10,000-vhost render allocates about a million short-lived objects and no cycles;
    each collection it triggers also walks the large, long-lived desired state, which
    measured 30-40% of the render. Reference counting still frees everything. The switch
    is process-wide (the daemon renders in a worker thread): other threads merely see no
    cycle collection for the few hundred milliseconds a render takes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def render(
    settings: MeshSettings,
    workspaces: Mapping[str, WorkspaceState],
    view: NodeView,
    *,
    exclude: frozenset[str] = frozenset(),
) -> Rendered:
    """Render the whole nginx tree for one node. Same input, same bytes.

    Units (vhosts, stream proxies) that break a reference, cannot be written safely, or
    are in ``exclude`` are ``skipped`` with the reason; the rest render. Raises
    ``ValueError`` only for an unusable node view.
    """
    with _no_gc_pauses():
        return _render(settings, workspaces, view, exclude)


@dataclass
class _Tree:
    """The tree being built: files, unit statuses, and the includes in order."""

    files: dict[str, bytes] = field(default_factory=dict)
    units: dict[str, UnitStatus] = field(default_factory=dict)
    http_includes: list[str] = field(default_factory=list)
    """Per-workspace upstreams and access tables, before any vhost."""
    vhost_includes: list[str] = field(default_factory=list)
    stream_includes: list[str] = field(default_factory=list)
    stream_unit_includes: list[str] = field(default_factory=list)
    shared: SharedHttp = field(default_factory=SharedHttp)
    streams_taken: dict[tuple[str, Listen], str] = field(default_factory=dict)

    def add(self, path: str, text: str, includes: list[str]) -> None:
        self.files[path] = text.encode()
        includes.append(path)


def _render(
    settings: MeshSettings,
    workspaces: Mapping[str, WorkspaceState],
    view: NodeView,
    exclude: frozenset[str],
) -> Rendered:
    _check_view(view)
    paths = _paths(view)
    entry_points = bind_entry_points(settings, view)
    node_header = Header(NODE_HEADER, view.node)
    ambiguous = ambiguous_certificates(workspaces)
    tree = _Tree()
    for ws in sorted(workspaces):
        raw_state = workspaces[ws]
        try:
            check_entity_id(ws)
        except ValueError as exc:
            invalid = UnitStatus("skipped", f"workspace id {ws!r} is invalid: {exc}")
            for vid in raw_state.virtual_hosts:
                tree.units[f"{ws}/vhost/{vid}"] = invalid
            for sid in raw_state.streams:
                tree.units[f"{ws}/stream/{sid}"] = invalid
            continue
        state, problems = _problems(raw_state, settings)
        upstreams = _Upstreams(ws, state, view, stream=False)
        ctx = VhostContext(
            workspace=ws,
            state=state,
            entry_points=entry_points,
            upstream=upstreams,
            installed=view.installed_certificates,
            ambiguous=ambiguous,
            base_headers=(node_header,),
        )
        _render_vhosts(tree, ctx, upstreams, raw_state, problems, exclude, paths.acme_location)
        tcp_listens = sorted({lst for ep in entry_points.values() for lst in ep.listens})
        _render_streams(tree, ws, state, raw_state, problems, exclude, view, tcp_listens)

    tree.files.update(
        _shared_files(
            view,
            paths,
            settings,
            entry_points,
            tree.shared,
            node_header,
            http_includes=tree.http_includes + tree.vhost_includes,
            stream_includes=tree.stream_includes + tree.stream_unit_includes,
        )
    )
    return Rendered(files=tree.files, revision=revision_of(tree.files), units=tree.units)


def _render_vhosts(
    tree: _Tree,
    ctx: VhostContext,
    upstreams: _Upstreams,
    raw_state: WorkspaceState,
    problems: Mapping[tuple[str, str], str],
    exclude: frozenset[str],
    acme_location: str,
) -> None:
    """One workspace's vhosts, in id order; then the upstreams and access tables they use."""
    ws = ctx.workspace
    server = macro("vhost.conf.j2", "server")
    used: set[str] = set()
    gates: set[str] = set()
    for vid in sorted(raw_state.virtual_hosts):
        unit = f"{ws}/vhost/{vid}"
        skip = _skip_reason(unit, vid, exclude, problems.get(("virtual_hosts", vid)))
        vhost = ctx.state.virtual_hosts.get(vid)
        if skip is None and vhost is not None and not vhost.enabled:
            skip = "disabled"
        if skip is not None or vhost is None:
            tree.units[unit] = UnitStatus("skipped", skip or "invalid")
            continue
        try:
            plan = plan_vhost(unit, vhost, ctx, tree.shared)
            text = None if plan.block is None else server(plan.block, acme_location)
            _check_contributions(plan)
        except _UNIT_ERRORS as exc:
            tree.units[unit] = UnitStatus("skipped", _NOT_SAFE + str(exc))
            continue
        if plan.skip is not None:
            tree.units[unit] = UnitStatus("skipped", plan.skip)
            continue
        tree.units[unit] = _status(plan.notes)
        if text is not None:
            tree.add(f"http.d/{ws}/vhosts/{vid}.conf", text, tree.vhost_includes)
            used |= plan.upstreams
            gates |= plan.gates
            _commit(plan, tree.shared)
    if used:
        tree.add(f"http.d/{ws}/upstreams.conf", upstreams.text(used), tree.http_includes)
    if gates:
        tree.add(f"http.d/{ws}/access.conf", _access_text(ws, ctx.state, gates), tree.http_includes)


def _render_streams(
    tree: _Tree,
    ws: str,
    state: WorkspaceState,
    raw_state: WorkspaceState,
    problems: Mapping[tuple[str, str], str],
    exclude: frozenset[str],
    view: NodeView,
    tcp_listens: list[Listen],
) -> None:
    """One workspace's stream proxies, in id order; then the stream upstreams they use."""
    server = macro("stream.conf.j2", "server")
    upstreams = _Upstreams(ws, state, view, stream=True)
    used: set[str] = set()
    for sid in sorted(raw_state.streams):
        unit = f"{ws}/stream/{sid}"
        skip = _skip_reason(unit, sid, exclude, problems.get(("streams", sid)))
        stream = state.streams.get(sid)
        if skip is None and stream is not None and not stream.enabled:
            skip = "disabled"
        if skip is not None or stream is None:
            tree.units[unit] = UnitStatus("skipped", skip or "invalid")
            continue
        try:
            block, notes, why = plan_stream(
                unit,
                stream,
                state,
                view.stream_address,
                upstreams,
                tree.streams_taken,
                tcp_listens,
            )
            text = None if block is None else server(block)
        except _UNIT_ERRORS as exc:
            tree.units[unit] = UnitStatus("skipped", _NOT_SAFE + str(exc))
            continue
        if block is None or text is None:
            tree.units[unit] = UnitStatus("skipped", why or "invalid")
            continue
        tree.units[unit] = _status(notes)
        tree.add(f"stream.d/{ws}/streams/{sid}.conf", text, tree.stream_unit_includes)
        tree.streams_taken[(stream.protocol, block.listen)] = unit
        if block.upstream is not None:
            used.add(stream.upstream)
    if used:
        tree.add(f"stream.d/{ws}/upstreams.conf", upstreams.text(used), tree.stream_includes)


def _access_text(ws: str, state: WorkspaceState, gates: set[str]) -> str:
    geos = []
    for ident in sorted(gates):
        default_deny, entries = geo_entries(state.access_lists[ident])
        geos.append((deny_variable(ws, ident), default_deny, entries))
    return template("access.conf.j2").render(geos=geos)


def _skip_reason(unit: str, ident: str, exclude: frozenset[str], problem: str | None) -> str | None:
    if unit in exclude:
        return "excluded"
    try:
        check_entity_id(ident)  # it names a file: never let it be "../x"
    except ValueError as exc:
        return f"id {ident!r} is invalid: {exc}"
    return problem


def _check_contributions(plan: VhostPlan) -> None:
    """What the plan adds to shared files must render too, or the unit does not render.

    Its names went through the ``server_name`` filter in its own block already (the map
    and redirect servers hold only those); certificate ids and HSTS values are new."""
    for cert in {cert for _, cert in plan.tls_names}:
        quoting.ident(cert)
    for var, value in plan.hsts_maps:
        quoting.ident(var)
        quoting.quote(value)


def _commit(plan: VhostPlan, shared: SharedHttp) -> None:
    block = plan.block
    assert block is not None
    for claim in plan.claims:
        shared.claims[claim] = plan.unit
    for name, cert in plan.tls_names:
        shared.tls_map.setdefault(name, (cert, plan.unit))
    longest = max(map(len, block.names))
    count = len(block.names)
    if plan.redirect is not None:  # the same names again, in a redirect server
        listens, port, names = plan.redirect
        shared.redirects.setdefault((listens, port), []).extend(names)
        count += len(names)
    if plan.http2:
        shared.http2.update(plan.http2)
    if plan.hsts_maps:
        shared.hsts_maps.update(plan.hsts_maps)
    shared.names += count
    if longest > shared.longest_name:
        shared.longest_name = longest


def _shared_files(
    view: NodeView,
    paths: _Paths,
    settings: MeshSettings,
    entry_points: Mapping[str, BoundEntryPoint],
    shared: SharedHttp,
    node_header: Header,
    *,
    http_includes: list[str],
    stream_includes: list[str],
) -> dict[str, bytes]:
    http_defaults = sorted(
        {lst for ep in entry_points.values() if ep.protocol == "http" for lst in ep.listens}
    )
    anchors = [
        HttpsAnchor(lst, lst in shared.http2)
        for lst in sorted(
            {lst for ep in entry_points.values() if ep.protocol == "https" for lst in ep.listens}
        )
    ]
    redirects = [
        RedirectServer(listens, port, tuple(names))
        for (listens, port), names in sorted(shared.redirects.items())
    ]
    files = {
        "mime.types": template("mime.types").render(),
        "http.d/_tls.conf": template("tls.conf.j2").render(
            fallback=FALLBACK_CERT,
            entries=sorted((name, cert) for name, (cert, _) in shared.tls_map.items()),
        ),
        "http.d/_default.conf": template("default.conf.j2").render(
            http_defaults=http_defaults,
            https_anchors=anchors,
            certificates_dir=paths.certificates_dir,
            acme_location=paths.acme_location,
            node_header=node_header,
        ),
    }
    includes = ["http.d/_tls.conf", "http.d/_default.conf"]
    if redirects:
        files["http.d/_redirect.conf"] = template("redirect.conf.j2").render(
            redirects=redirects, acme_location=paths.acme_location
        )
        includes.append("http.d/_redirect.conf")
    longest = max(shared.longest_name, 1)
    files["nginx.conf"] = template("nginx.conf.j2").render(
        user=view.user,
        worker_processes=view.worker_processes,
        worker_shutdown_timeout=settings.worker_shutdown_timeout,
        prefix=paths.prefix,
        stream_module=view.stream_module,
        streams=bool(stream_includes),
        names_hash=hash_size(shared.names, longest),
        map_hash=hash_size(len(shared.tls_map), longest),
        proxy_headers=STANDARD_PROXY_HEADERS,
        node_header=node_header,
        hsts_maps=sorted(shared.hsts_maps.items()),
        http_includes=includes + http_includes,
        stream_includes=stream_includes,
    )
    return {path: text.encode() for path, text in files.items()}
