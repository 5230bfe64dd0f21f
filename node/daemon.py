"""The node daemon: one trio nursery of services around this node's replica.

Services, each started with ``nursery.start``: the mesh driver (admissions on; it answers
members' report queries: node.report), the event pump (broadcasts -> replica; member
events -> watchers), the nginx supervisor (managed mode) and the applier, the API on the
Unix socket, the metrics endpoint, ACME (orders, challenges, certificate installs:
node.acme) and the housekeeping loops (metadata, revocations and key rotation,
compaction). A crash of a restartable service is logged and
the service restarted with backoff; one that keeps failing, or a crash of the mesh driver
or the API, stops the daemon with a clear message.

:meth:`Daemon.shutdown` (SIGTERM/SIGINT, or ``nxmesh leave``) announces the leave, lets
in-flight edits finish (they are synchronous: none is ever half-done), stops managed
nginx and returns; ``nxmesh run`` then exits 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from crdt.documents import MESH_DOCUMENT, workspace_document, workspace_of
from crdt.joining import answer_join
from crdt.replication import Replicator
from crdt.schema import Certificate
from crdt.secrets import SecretError
from crdt.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_UPDATES, PersistedDoc, Store, StoreError
from mesh import (
    BroadcastDelivered,
    Event,
    MemberDead,
    MemberEvent,
    MemberLeft,
    MeshConfig,
    MeshNode,
    QueryError,
    fingerprint,
)
from mesh import Member as MeshMember
from node import logs
from node.acme.challenges import ChallengeDir
from node.acme.install import Installer
from node.acme.metrics import AcmeMetrics
from node.acme.service import AcmeService, Host
from node.api.access import AccessPolicy
from node.api.app import create_app
from node.api.audit import AuditFeed
from node.api.events import EventHub
from node.api.server import serve
from node.api.services import Invite, Member, NodeUnreachable, SecretUnavailable
from node.certs import ensure_fallback, runtime_certs_dir
from node.config import NodeConfig, format_host_port, parse_host_port
from node.membership import MeshMembership
from node.meta import NodeMeta
from node.metrics import MeshCollector, MetricsServer, StateCollector, StateCounters
from node.nginx import Applier, ApplierStatus, Metrics, NginxSettings, Supervisor
from node.permissions import prepare as prepare_permissions
from node.permissions import worker_user
from node.replica import Replica
from node.report import (
    BadReport,
    NoSuchFile,
    Request,
    View,
    config_report,
    metrics_summary,
    pack_answer,
    pack_error,
    status_report,
    tree_tokens,
    unpack_answer,
    workspace_of_path,
    workspace_of_unit,
)
from node.resolver import Resolver, upstream_hosts
from node.statedir import StateDir
from node.version import __version__
from render import Listen, NodeView, Rendered, preload, render

__all__ = ["Daemon", "DaemonError"]

log = logs.get("nxmesh.daemon")

_META_INTERVAL = 0.2
_HOUSEKEEPING_INTERVAL = 5.0
_COMPACT_INTERVAL = 60.0
_RESTARTS = 5
_RESTART_WINDOW = 60.0


class DaemonError(Exception):
    """The daemon cannot run or had to stop; the message says why in one line."""


class Daemon:
    """One node: ``await nursery.start(daemon.run)``; :meth:`shutdown` to stop."""

    def __init__(self, state: StateDir, config: NodeConfig) -> None:
        state.require()
        self.state = state
        self.config = config
        self.identity = state.read_identity()
        self.genesis = state.read_genesis()
        try:
            self.store = Store.open(state.store)
        except StoreError as exc:
            raise DaemonError(f"cannot open the store {state.store}: {exc}") from None
        self.replica = Replica(self.store, self.identity, self.genesis, admit=self._admit)
        self.replica.listeners.append(self._document_changed)
        self.events = EventHub()
        self.audit = AuditFeed(config.name)
        """Peers' edits, from the documents' audit logs, as ``change`` events."""
        self._follow_documents()
        self.registry = CollectorRegistry()
        self.counters = StateCounters()
        self.nginx_metrics = Metrics(self.registry)
        self.registry.register(MeshCollector(lambda: self._node, __version__))
        self.registry.register(StateCollector(self.counters))
        self.membership = MeshMembership(self.replica, self._live_node, self.published)
        self.resolver = Resolver()
        self.workers = worker_user()
        """Who nginx's workers run as (None: as this process)."""
        group = self.workers.gid if self.workers is not None else None
        certs = runtime_certs_dir(state.root, config.name)
        challenges = certs.parent / "acme" if certs != state.certs else state.root / "acme"
        self.acme = AcmeService(
            Host(
                replica=self.replica,
                identity=self.identity,
                node_name=config.name,
                published=self.published,
                live=self._live_members,
                events=self.events,
                submit=self._submit,
                meta_dirty=lambda: self._meta_dirty.set(),
            ),
            Installer(certs, state.certs, group=group),
            ChallengeDir(challenges, group=group),
            metrics=AcmeMetrics(self.registry),
        )
        self._cert_refs: dict[str, frozenset[str]] = {}
        """Certificate ids each rendered revision uses (old files go once none does)."""
        self._node: MeshNode | None = None
        self.applier: Applier | None = None
        self.supervisor: Supervisor | None = None
        self.metrics_addr: tuple[str, int] | None = None
        self.socket_path = state.socket
        self._meta_dirty = trio.Event()
        self._housekeeping = trio.Event()
        self._digests: dict[str, str] = {}
        """Revision -> digest of the desired state it was rendered from."""
        self._known_workspaces: tuple[int, list[str]] = (-1, [])
        self._metas: dict[bytes, tuple[bytes, NodeMeta | None]] = {}
        """Member key -> (packed metadata, unpacked); bounded by the member table."""
        self._workspace_digests: dict[str, dict[str, str]] = {}
        """Revision -> workspace -> digest of that workspace's part of it."""
        self._units: dict[str, dict[str, str]] = {}
        """Units not ``ok`` in the last full render (degraded or skipped), with why."""
        self._invalid: list[str] = []
        """Stored entities that do not validate (skipped), from the last full render."""
        self._tokens: dict[tuple[Path, frozenset[str]], frozenset[str]] = {}
        """Hidden names per (applied tree, hidden workspaces): node.report.View."""
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ service

    @property
    def node(self) -> MeshNode:
        return self._live_node()

    def _live_node(self) -> MeshNode:
        if self._node is None:
            raise DaemonError("the mesh node is not running")
        return self._node

    async def run(self, *, task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service, report started, run until :meth:`shutdown`."""
        config = self.config
        preset = {"lan": MeshConfig.lan, "wan": MeshConfig.wan, "local": MeshConfig.local}
        node = MeshNode(
            identity=self.identity,
            mesh_id=self.genesis.mesh_id,
            bind=config.listen_addr,
            advertise=config.advertise_addr,
            config=preset[config.preset](),
            delegate=self.replica.replicator,
            boot_epoch=self.state.next_boot_epoch(),
            meta=self._meta().pack(),
            admissions=True,
            answerer=self,
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await nursery.start(node.run)
                except OSError as exc:
                    raise DaemonError(
                        f"cannot listen on {config.listen}: {exc.strerror or exc}"
                    ) from None
                self._node = node
                nursery.start_soon(self._pump, node.subscribe())
                compile_templates = partial(
                    trio.to_thread.run_sync, preload, abandon_on_cancel=True
                )
                nursery.start_soon(compile_templates)
                await self._start_nginx(nursery)
                await self._start_api(nursery)
                self._start_metrics()
                for name, loop in (
                    ("acme", self.acme.run),
                    ("metadata", self._meta_loop),
                    ("housekeeping", self._housekeeping_loop),
                    ("join", self._join_loop),
                ):
                    nursery.start_soon(self._supervised, name, loop)
                log.info(
                    "node started",
                    node=config.name,
                    key=fingerprint(self.identity.public_key),
                    mesh=format_host_port(node.addr),
                    api=str(self.socket_path),
                    metrics=format_host_port(self.metrics_addr) if self.metrics_addr else "off",
                    nginx=config.nginx_mode,
                )
                task_status.started(self)
                await self._stop.wait()
                await self._graceful(node)
                nursery.cancel_scope.cancel()
        finally:
            self._node = None
            if self._metrics_server is not None:
                self._metrics_server.stop()
            if config.nginx_mode != "external":  # keys leave with the nginx that used them
                self.acme.remove_files()
            self.store.close()
            self._stopped.set()

    async def shutdown(self) -> None:
        """Leave the mesh and stop every service; returns once stopped."""
        self._stop.set()
        await self._stopped.wait()

    def request_shutdown(self) -> None:
        """Ask the daemon to leave and stop (from a signal handler task, or a service)."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _graceful(self, node: MeshNode) -> None:
        with trio.move_on_after(10):
            try:
                await node.leave(grace=3.0)
            except Exception as exc:
                log.warning("leave announcement failed", error=str(exc))
        log.info("node stopping", node=self.config.name)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop``; restart it with backoff when it crashes; stop the daemon when it
        keeps crashing."""
        failures: list[float] = []
        delay = 0.5
        while True:
            try:
                await loop()
                return
            except Exception as exc:
                now = trio.current_time()
                failures = [t for t in failures if now - t < _RESTART_WINDOW] + [now]
                log.error("service crashed", service=name, error=repr(exc), exc_info=True)
                if len(failures) >= _RESTARTS:
                    raise DaemonError(
                        f"service {name!r} crashed {len(failures)} times in "
                        f"{_RESTART_WINDOW:g} s; last error: {exc!r}"
                    ) from exc
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                return

    # ------------------------------------------------------------------ mesh events

    async def _pump(self, events: trio.MemoryReceiveChannel[Event]) -> None:
        async for event in events:
            if isinstance(event, BroadcastDelivered):
                before = self.replica.replicator.applied
                self.replica.replicator.deliver(event.payload, event.topic)
                self.counters.remote_updates += self.replica.replicator.applied - before
                self.counters.replication_drops = dict(self.replica.replicator.drops)
            elif isinstance(event, MemberEvent):
                meta = self._member_event(event)
                self.acme.members_changed(event.member.key, event.member.reachable, meta)

    def _member_event(self, event: MemberEvent) -> NodeMeta | None:
        """Tell the watch stream; return the member's metadata."""
        member = event.member
        kind = type(event).__name__.removeprefix("Member").lower()
        meta = self._meta_of(member.key, member.meta)
        name = self.replica.mesh.verifier.names.get(member.key) or (meta.name if meta else "")
        self.events.publish(
            {
                "type": "member",
                "event": kind,
                "node": name,
                "key": fingerprint(member.key),
                "state": member.state.name.lower(),
                "address": format_host_port(member.addr),
                "metadata": meta.to_json(self._workspace_ids()) if meta else {},
            }
        )
        if isinstance(event, MemberDead | MemberLeft):
            self._metas.pop(member.key, None)
        return meta

    def _workspace_ids(self) -> list[str]:
        # Every member event names workspaces: validate them once per mesh-document change.
        generation = self.replica.mesh_doc.generation
        if self._known_workspaces[0] != generation:
            self._known_workspaces = (generation, [w.id for w in self.replica.workspaces()])
        return self._known_workspaces[1]

    async def _join_loop(self) -> None:
        """Join through the configured seeds at start; retry until one answers."""
        seeds = [s for s in self.config.seed_addrs() if s != self.config.listen_addr]
        if not seeds:
            return
        delay = 0.5
        while True:
            try:
                await self.node.join(seeds)
            except Exception as exc:  # JoinError and friends: retried
                log.warning("join failed; retrying", error=str(exc), retry_in=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                log.info("joined the mesh", seeds=[format_host_port(s) for s in seeds])
                return

    # ------------------------------------------------------------------ documents

    def published(self, name: str, update: bytes) -> None:
        """A local edit was acknowledged (fsynced): broadcast it and react to it."""
        self.counters.local_edits += 1
        node = self._node
        if node is not None:
            node.broadcast(*Replicator.publish(name, update))
        self.replica.changed(name)

    def _follow_documents(self) -> None:
        """Follow the audit log of every document replicated here (new ones from their
        current content)."""
        docs = {MESH_DOCUMENT: self.replica.mesh_doc.doc}
        for ws, persisted in self.replica.workspace_docs.items():
            docs[workspace_document(ws)] = persisted.doc
        self.audit.sync(docs)

    def _document_changed(self, name: str, origin: str) -> None:
        if name == MESH_DOCUMENT or not self.audit.follows(name):
            self._follow_documents()  # workspaces open and close with mesh changes
        persisted = self.replica.document(name)
        # This node's own edits were told by its API, and a feed skips them anyway: read
        # the log (about 1 ms at 200 entries) only for a peer's update.
        told: list[dict[str, Any]] = []
        if persisted is not None and origin != "local":
            told = self.audit.changes(name, persisted.doc)
        for change in told:
            self.events.publish(change)
        self.events.publish(
            {"type": "document", "document": name, "origin": origin, "changes": len(told)}
        )
        self.acme.document_changed(name)
        self._submit()
        if name == MESH_DOCUMENT:
            self._housekeeping.set()
            self._meta_dirty.set()

    def _admit(self, peer: bytes, payload: bytes) -> bytes:
        """A stranger presents a join token (mesh/'s admission request)."""
        answer = answer_join(
            self.replica.mesh,
            self.identity,
            peer,
            payload,
            int(time.time()),
            partial(self.published, MESH_DOCUMENT),
        )
        log.info("admission request answered", peer=fingerprint(peer))
        return answer

    # ------------------------------------------------------------------ nginx

    def _submit(self) -> None:
        if self.applier is not None:
            self.applier.submit()

    def _live_members(self) -> dict[bytes, NodeMeta | None]:
        """Members alive or suspect (this node included) with their metadata."""
        node = self._node
        if node is None:
            return {}
        members: list[MeshMember] = node.members()
        return {m.key: self._meta_of(m.key, m.meta) for m in members if m.reachable}

    def _meta_of(self, key: bytes, packed: bytes) -> NodeMeta | None:
        """A member's metadata, unpacked once per version (the ACME service reads every
        member's at each of its passes; member events read them again)."""
        cached = self._metas.get(key)
        if cached is not None and cached[0] == packed:
            return cached[1]
        meta = NodeMeta.unpack(packed)
        self._metas[key] = (packed, meta)
        return meta

    async def _start_nginx(self, nursery: trio.Nursery) -> None:
        config = self.config
        await trio.to_thread.run_sync(ensure_fallback, self.state.certs, config.name)
        if self.workers is not None and config.nginx_mode != "render-only":
            await trio.to_thread.run_sync(prepare_permissions, self.state, self.workers)
        # Certificates and challenge files from the documents before nginx first starts.
        self.acme.start()
        settings = NginxSettings(
            prefix=self.state.nginx_prefix,
            mode=config.nginx_mode,
            binary=config.nginx_binary,
            pid_file=Path(config.nginx_pid_file) if config.nginx_pid_file else None,
            splay=config.splay,
        )
        if config.nginx_mode == "managed":
            self.supervisor = Supervisor(
                settings, metrics=self.nginx_metrics, on_status=lambda _s: self._meta_dirty.set()
            )
            await nursery.start(self.supervisor.run)
        self.applier = Applier(
            settings,
            self._build,
            server=self.supervisor,
            metrics=self.nginx_metrics,
            on_status=self._applier_status,
        )
        await nursery.start(self.applier.run)
        self.applier.submit()

    def view(self) -> NodeView:
        """How this node binds and where its files are (render/'s node view)."""
        entry_points: dict[str, tuple[Listen, ...]] = {}
        for name in ("http", "https"):
            value = getattr(self.config, name)
            if value:
                host, port = parse_host_port(value, name)
                entry_points[name] = (Listen(host, port),)
        installer = self.acme.installer
        return NodeView(
            node=self.config.name,
            prefix=str(self.state.nginx_prefix),
            entry_points=entry_points,
            certificates_dir=str(installer.directory),
            acme_challenge_dir=str(self.acme.challenges.directory),
            installed_certificates=installer.ids(),
            user=self.workers.name if self.workers is not None else None,
        )

    async def _build(self, exclude: frozenset[str]) -> Rendered:
        desired = self.replica.desired()
        resolved = await self.resolver.resolve(upstream_hosts(desired.workspaces.values()))
        view = replace(self.view(), resolved=resolved)
        job = partial(render, desired.settings, desired.workspaces, view, exclude=exclude)
        # A few servers render in a few ms: on the loop's thread, as the applier stages
        # small trees; thousands take seconds and must not stall the loop.
        servers = sum(len(w.virtual_hosts) + len(w.streams) for w in desired.workspaces.values())
        inline = self.applier is not None and servers <= self.applier.settings.inline_files
        rendered = job() if inline else await trio.to_thread.run_sync(job)
        self._digests[rendered.revision] = desired.digest
        self._workspace_digests[rendered.revision] = desired.workspace_digests
        refs = view.installed_certificates & frozenset(
            cert_id for ws in desired.workspaces.values() for cert_id in ws.certificates
        )
        self._cert_refs[rendered.revision] = refs
        if self.applier is not None and self.applier.status.revision == rendered.revision:
            self.acme.applied(refs)  # unchanged tree: nginx already serves it
        # An edit may leave the tree unchanged (an upstream nothing uses): no apply, no
        # status change - but the node now serves the newer desired state; say so.
        self._meta_dirty.set()
        if not exclude:  # a full render: what every unit looks like on this node
            self._units = {
                key: {"state": unit.state, "reason": unit.reason}
                for key, unit in sorted(rendered.units.items())
                if unit.state != "ok"
            }
            self._invalid = desired.invalid
        if len(self._digests) > 64:
            for key in list(self._digests)[:-32]:
                del self._digests[key]
                self._workspace_digests.pop(key, None)
                self._cert_refs.pop(key, None)
        return rendered

    def _applier_status(self, status: ApplierStatus) -> None:
        self._meta_dirty.set()
        refs = self._cert_refs.get(status.revision or "")
        if refs is not None:
            self.acme.applied(refs)
        self.events.publish(
            {
                "type": "apply",
                "node": self.config.name,
                "state": status.state,
                "summary": status.summary(),
                "revision": status.revision,
                "quarantined": [{"unit": q.unit, "reason": q.reason} for q in status.quarantined],
                "nginx_message": status.nginx_message,
            }
        )

    # ------------------------------------------------------------------ reports

    async def answer_query(self, sender: bytes, payload: bytes) -> bytes | None:
        """A member asks about this node (mesh/'s query): what it may see of it."""
        if not self.replica.mesh.is_member(sender):
            return None
        try:
            request = Request.unpack(payload)
        except BadReport as exc:
            return pack_error("bad-request", str(exc))
        try:
            report = await self.report(request, await self._view_for(sender))
        except NoSuchFile as exc:
            return pack_error("no-such-file", str(exc))
        log.debug("report query answered", peer=fingerprint(sender), report=request.kind)
        return pack_answer(report)

    async def node_report(self, name: str, request: Request) -> dict[str, Any]:
        """The report of node ``name`` for the API: this node's own at once (all of it),
        another's over the mesh (what this node may see); :class:`UnknownNode`,
        :class:`NodeUnreachable`, :class:`NoSuchFile`."""
        key = self.membership.find(name)
        if key == self.identity.public_key:
            return {"node": name, "source": "local", **await self.report(request, View())}
        try:
            answer = await self.node.query(key, request.pack())
            report = unpack_answer(answer)
        except (QueryError, BadReport) as exc:
            raise NodeUnreachable(f"node {name!r} cannot be reached: {exc}") from None
        return {**report, "node": name, "source": "mesh"}

    async def report(self, request: Request, view: View) -> dict[str, Any]:
        """This node's status or applied configuration as ``view`` shows it."""
        applier = self.applier
        if request.kind == "status":
            status = applier.status if applier is not None else ApplierStatus()
            metrics = metrics_summary(self.registry, view, status)
            apply = self.status()["apply"]  # as /v1/status shows it
            return status_report(status, apply, self._units, self._invalid, metrics, view)
        applied = applier.applied if applier is not None else None
        tree, manifest = applied if applied is not None else (None, None)
        return await trio.to_thread.run_sync(
            partial(config_report, tree, manifest, view, request.path, forbidden=self._keys())
        )

    def _keys(self) -> tuple[Path, ...]:
        """Directories no report may read from (certificates and their keys)."""
        return (self.state.certs, self.acme.installer.directory)

    def _hidden_from(self, asker: bytes) -> frozenset[str]:
        """Workspaces this node has something of that ``asker`` does not serve."""
        mesh = self.replica.mesh
        if mesh.serves_all(asker):
            return frozenset()
        ours = set(self.replica.served())
        ours.update(workspace_of_unit(unit) for unit in self._units)
        applier = self.applier
        if applier is not None:
            ours.update(workspace_of_unit(q.unit) for q in applier.status.quarantined)
            applied = applier.applied
            if applied is not None:
                ours.update(ws for p in applied[1].files if (ws := workspace_of_path(p)))
        return frozenset(ws for ws in ours if not mesh.serves(asker, ws))

    async def _view_for(self, asker: bytes) -> View:
        hidden = self._hidden_from(asker)
        applied = self.applier.applied if self.applier is not None else None
        if not hidden or applied is None:
            return View(hidden)
        tree, manifest = applied
        tokens = self._tokens.get((tree, hidden))
        if tokens is None:
            tokens = await trio.to_thread.run_sync(
                tree_tokens, tree, manifest, hidden, self._keys()
            )
            if len(self._tokens) >= 8:
                self._tokens.clear()
            self._tokens[tree, hidden] = tokens
        return View(hidden, tokens)

    # ------------------------------------------------------------------ metadata

    def _meta(self) -> NodeMeta:
        applier = self.applier
        status = applier.status if applier is not None else ApplierStatus()
        nginx: str = self.config.nginx_mode
        if nginx == "managed":
            nginx = self.supervisor.status.state if self.supervisor is not None else "starting"
        revision = status.revision or ""
        return NodeMeta(
            name=self.config.name,
            version=__version__,
            nginx=nginx,
            apply=status.state,
            quarantined=len(status.quarantined),
            reason=status.reason,
            revision=revision[:12],
            state=self._digests.get(revision, ""),
            workspaces=NodeMeta.digests(self._workspace_digests.get(revision, {})),
            labels=self.membership.labels(self.identity.public_key),
            acme=self.acme.reported(),
        )

    async def _meta_loop(self) -> None:
        published = b""
        while True:
            await self._meta_dirty.wait()
            self._meta_dirty = trio.Event()
            meta = self._meta().pack()
            if meta != published and self._node is not None:
                self._node.set_meta(meta)
                published = meta
                # Coalesce bursts of status changes - but only after a publication: a
                # wake-up that found nothing new must not delay the next real change.
                await trio.sleep(_META_INTERVAL)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping_loop(self) -> None:
        last_compaction = -math.inf
        while True:
            with trio.move_on_after(_HOUSEKEEPING_INTERVAL):
                await self._housekeeping.wait()
            self._housekeeping = trio.Event()
            self._enforce_revocations()
            self._maintain_keys()
            now = trio.current_time()
            if now - last_compaction >= _COMPACT_INTERVAL:
                last_compaction = now
                self._compact()

    def _enforce_revocations(self) -> None:
        node = self._node
        if node is None:
            return
        mesh = self.replica.mesh
        if not mesh.is_member(self.identity.public_key):
            log.error("this node's membership was revoked; stopping", node=self.config.name)
            self.request_shutdown()
            return
        for member in node.members():
            if member.key != node.key and not mesh.is_member(member.key):
                log.info("forgetting a revoked member", key=fingerprint(member.key))
                node.forget(member.key)

    def _maintain_keys(self) -> None:
        now = int(time.time())
        for ws, vault in list(self.replica.vaults.items()):
            if vault.keyring.newest() is None and not vault.secret_ids():
                continue  # no secrets yet: the first upload creates the key
            try:
                update = vault.maintain(self.replica.mesh.servers(ws), now)
            except StoreError as exc:
                log.warning("cannot store rotated keys", workspace=ws, error=str(exc))
                continue
            if update is not None:
                self.published(vault.persisted.name, update)

    def _compact(self) -> None:
        docs: list[PersistedDoc] = [self.replica.mesh_doc, *self.replica.workspace_docs.values()]
        for doc in docs:
            try:
                doc.compact_if_needed(DEFAULT_MAX_UPDATES, DEFAULT_MAX_BYTES)
                self.counters.documents[doc.name] = self.store.stats(doc.name).bytes
            except StoreError as exc:
                log.warning("compaction failed", document=doc.name, error=str(exc))

    # ------------------------------------------------------------------ API and metrics

    _metrics_server: MetricsServer | None = None

    async def _start_api(self, nursery: trio.Nursery) -> None:
        try:
            policy = AccessPolicy.from_config(dict(self.config.roles))
        except ValueError as exc:
            raise DaemonError(f"roles: {exc}") from None
        app = create_app(_Services(self), policy=policy)
        if self.socket_path.exists():
            self.socket_path.unlink()  # a stale socket of an earlier run (we hold the state)
        await nursery.start(partial(serve, app, self.socket_path))

    def _start_metrics(self) -> None:
        if self.config.metrics == "off":
            return
        host, port = parse_host_port(self.config.metrics, "metrics", allow_zero=True)
        self._metrics_server = MetricsServer(self.registry, host, port)
        try:
            self.metrics_addr = self._metrics_server.start()
        except OSError as exc:
            raise DaemonError(
                f"cannot serve metrics on {self.config.metrics}: {exc.strerror or exc}"
            ) from None

    def status(self) -> dict[str, Any]:
        node = self._node
        members: dict[str, int] = {}
        if node is not None:
            for m in node.members():
                key = m.state.name.lower()
                members[key] = members.get(key, 0) + 1
        meta = self._meta()
        return {
            "node": self.config.name,
            "key": fingerprint(self.identity.public_key),
            "mesh_id": self.genesis.mesh_id.hex(),
            "version": __version__,
            "address": format_host_port(node.addr) if node is not None else "",
            "members": members,
            "workspaces": sorted(self.replica.workspace_docs),
            "apply": meta.to_json(self._workspace_ids()),
            "quarantined": [
                {"unit": q.unit, "reason": q.reason}
                for q in (self.applier.status.quarantined if self.applier else ())
            ],
            "units": self._units,
            "invalid": self._invalid,
            "certificates": self.acme.node_status(),
            "metrics": format_host_port(self.metrics_addr) if self.metrics_addr else "off",
            "uptime_s": round(time.time() - self.started_at, 1),
        }


class _Services:
    """The API's view of the daemon (node.api.services.ApiServices)."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.events: EventHub = daemon.events

    @property
    def node_name(self) -> str:
        return self._d.config.name

    def document(self, name: str) -> PersistedDoc | None:
        if name != MESH_DOCUMENT and workspace_of(name) is None:
            return None
        return self._d.replica.document(name)

    def published(self, doc_name: str, update: bytes) -> None:
        self._d.published(doc_name, update)

    def status(self) -> dict[str, Any]:
        return self._d.status()

    def members(self) -> list[Member]:
        return self._d.membership.members()

    async def set_labels(self, node: str, labels: dict[str, str]) -> Member:
        member = await self._d.membership.set_labels(node, labels)
        self._d._meta_dirty.set()
        return member

    async def set_workspaces(self, node: str, workspaces: list[str]) -> Member:
        return await self._d.membership.set_workspaces(node, workspaces)

    async def create_invite(self, ttl: float, uses: int) -> Invite:
        return await self._d.membership.create_invite(ttl, uses)

    async def revoke(self, node: str) -> Member:
        return await self._d.membership.revoke(node)

    def seal_secret(self, workspace: str, secret_id: str, plaintext: bytes) -> None:
        if workspace not in self._d.replica.vaults:
            raise SecretUnavailable(f"workspace {workspace!r} is not served here")
        try:
            self._d.acme.seal(workspace, secret_id, plaintext)
        except SecretError as exc:
            raise SecretUnavailable(str(exc)) from None

    def drop_secret(self, workspace: str, secret_id: str) -> None:
        self._d.acme.drop_secret(workspace, secret_id)

    def acme_subjects(self, workspace: str) -> list[dict[str, Any]]:
        return self._d.acme.status(workspace)

    def certificate_status(self, workspace: str, certificate: Certificate) -> dict[str, Any]:
        return self._d.acme.certificate(workspace, certificate)

    async def node_status(self, node: str) -> dict[str, Any]:
        return await self._d.node_report(node, Request("status"))

    async def node_config(self, node: str, path: str | None) -> dict[str, Any]:
        return await self._d.node_report(node, Request("config", path))
