"""The ACME service of a node: plans, leases, orders, installs - one trio task tree.

Every pass (on a document change, a membership change, or a timer) the service

1. mirrors the HTTP-01 challenge records of its workspaces into its challenge directory
   (:class:`~node.acme.challenges.ChallengeDir`) and reports them in its metadata;
2. for every subject (:mod:`node.acme.plan`) that needs a certificate - none yet,
   renewal due, or renewal asked for - and is not backing off, decides who orders: the
   holder of a live lease, else the rendezvous choice among the live nodes serving the
   workspace. When that is this node it writes a lease and starts an
   :class:`~node.acme.orderer.OrderJob`;
3. installs every certificate of its workspaces that carries a chain and a sealed key
   (:class:`~node.acme.install.Installer`) and kicks the applier when files changed;
4. as the workspace's housekeeper (rendezvous over ``gc:<workspace>``): deletes
   superseded and expired ACME certificates and their sealed keys, expired challenge
   records and records of subjects that no longer exist; asks the CA for renewal
   information (ARI) where it offers it;
5. refreshes the metrics snapshot and publishes expiry events.

See docs/certificates.md for the rules and their worst cases.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import structlog
import trio
from pycrdt import Doc, Map

from crdt.documents import MESH_DOCUMENT, MeshDocument, WorkspaceDocument
from crdt.schema import Certificate, Invalid, MeshSettings, VirtualHost, Workspace
from crdt.secrets import SecretError
from crdt.store import StoreError
from mesh import Identity
from node.acme import plan, records, view
from node.acme.challenges import ChallengeDir, token_hash
from node.acme.install import Installer
from node.acme.keys import generate_key
from node.acme.metrics import AcmeMetrics, CertificateSnapshot
from node.acme.records import (
    ChallengeRecord,
    Lease,
    SubjectStatus,
    read_map,
)
from node.acme.settings import Issuer, Tuning, issuer_for
from node.api.cache import DocumentCache
from node.api.events import EventHub
from node.meta import NodeMeta
from node.replica import Replica
from render.tls import ambiguous_certificates

__all__ = ["AcmeService"]

log = structlog.get_logger("nxmesh.acme")

_PASS_PERIOD = 30.0
"""Longest time between passes when nothing happens."""
_COALESCE = 0.05
_ARI_RECHECK = 6 * 3600.0
KEEP_LINEAGE = 2
"""ACME certificates kept per subject (the newest and the one before it)."""


@dataclass(frozen=True)
class Host:
    """What the service needs from the daemon."""

    replica: Replica
    identity: Identity
    node_name: str
    published: Callable[[str, bytes], None]
    """Broadcast an acknowledged local update (and tell the listeners)."""
    live: Callable[[], dict[bytes, NodeMeta | None]]
    """Members alive or suspect (this node included) with their metadata."""
    events: EventHub
    submit: Callable[[], None]
    """Ask the applier for a pass (certificate files changed)."""
    meta_dirty: Callable[[], None]
    """This node's metadata changed (challenge tokens served)."""


class AcmeService:
    def __init__(
        self,
        host: Host,
        installer: Installer,
        challenges: ChallengeDir,
        *,
        tuning: Tuning | None = None,
        metrics: AcmeMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.installer = installer
        self.challenges = challenges
        self.tuning = tuning or Tuning.from_env()
        self.metrics = metrics or AcmeMetrics(None)
        self.clock = clock
        self.me = host.identity.public_key
        self.me_hex = self.me.hex()
        self._wake = trio.Event()
        self._members = trio.Event()
        self._member_view: dict[bytes, bool] = {}
        """Reachable member -> whether it takes part in ACME, as member events told."""
        self._caches: dict[str, tuple[Any, DocumentCache]] = {}
        self._jobs: dict[tuple[str, str], Any] = {}
        self._ari: set[tuple[str, str]] = set()
        self._ari_offered: dict[str, tuple[bool, float]] = {}
        """Directory -> (whether it offers ARI, when that was learnt)."""
        self._ari_limit = trio.CapacityLimiter(4)
        self._unclaimed: dict[tuple[str, str], float] = {}
        self._expiry_level: dict[tuple[str, str], str] = {}
        self._referenced: frozenset[str] | None = None
        self._next = 0.0
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ daemon hooks

    def document_changed(self, name: str) -> None:
        self._wake.set()

    def members_changed(self, key: bytes, reachable: bool, meta: NodeMeta | None) -> None:
        """A member event. Orders waiting for their tokens to spread hear of every one;
        a pass runs only when the nodes that may order changed (a member came, went, or
        started or stopped taking part) - not for every node's new applied revision,
        which every edit makes every node publish."""
        self._members.set()
        self._members = trio.Event()
        before = self._member_view.pop(key, None)
        if reachable:
            self._member_view[key] = _capable(meta)
        if before != self._member_view.get(key):
            self._wake.set()

    def applied(self, referenced: frozenset[str]) -> None:
        """nginx now serves a revision using these certificate ids."""
        self._referenced = referenced
        self._wake.set()

    def reported(self) -> tuple[bytes, ...]:
        """Token hashes for this node's metadata."""
        return self.challenges.reported()

    # ------------------------------------------------------------------ startup

    def start(self) -> None:
        """Synchronous first pass before nginx starts: directories, certificates and
        challenge files from the documents as they are on disk."""
        self.installer.prepare()
        self.challenges.prepare()
        self._sync_challenges()
        self._install(self.clock())

    def remove_files(self) -> None:
        """Delete installed keys and challenge files (at a clean stop, when no nginx
        keeps using them); never the state directory's own ``certs/``."""
        self.installer.remove_all()
        if self.challenges.directory.parent == self.installer.directory.parent:
            self.challenges.remove()
            with contextlib.suppress(OSError):
                self.installer.directory.parent.rmdir()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                started = trio.current_time()
                try:
                    self._sync_challenges()
                    self._pass(self.clock())
                except Exception:  # a bug here must not take the node down: log, go on
                    log.exception("acme pass failed")
                    self._next = self.clock() + 5.0
                spent = trio.current_time() - started
                delay = max(0.2, min(self._next - self.clock(), _PASS_PERIOD))
                with trio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = trio.Event()
                # Coalesce bursts; a large fleet's pass never takes more than half the time.
                await trio.sleep(max(_COALESCE, spent))

    # ------------------------------------------------------------------ documents

    def _doc(self, ws: str) -> Doc[Any] | None:
        persisted = self.host.replica.workspace_docs.get(ws)
        return persisted.doc if persisted is not None else None

    def commit(self, ws: str, fn: Callable[[Doc[Any]], None]) -> None:
        """Run ``fn`` durably on the workspace document and broadcast the update."""
        persisted = self.host.replica.workspace_docs.get(ws)
        if persisted is None:
            raise StoreError(f"workspace {ws!r} is no longer served here")
        update = persisted.commit(fn)
        if update is not None:
            self.host.published(persisted.name, update)

    def commit_mesh(self, fn: Callable[[Doc[Any]], None]) -> None:
        persisted = self.host.replica.mesh_doc
        update = persisted.commit(fn)
        if update is not None:
            self.host.published(MESH_DOCUMENT, update)

    def state(self, ws: str) -> tuple[dict[str, VirtualHost], dict[str, Certificate]]:
        """Valid vhosts and certificates of a served workspace (incrementally cached)."""
        persisted = self.host.replica.workspace_docs[ws]
        entry = self._caches.get(ws)
        if entry is None or entry[0] is not persisted:
            entry = (persisted, DocumentCache((VirtualHost, Certificate)))
            self._caches[ws] = entry
        good, _ = entry[1].refresh(WorkspaceDocument(persisted.doc))
        vhosts = {k: v for k, v in good["virtual_hosts"].items() if isinstance(v, VirtualHost)}
        certs = {k: v for k, v in good["certificates"].items() if isinstance(v, Certificate)}
        return vhosts, certs

    def issuer(self, ws: str) -> Issuer:
        mesh = MeshDocument(self.host.replica.mesh_doc.doc)
        settings = mesh.settings()
        if isinstance(settings, Invalid):
            settings = MeshSettings()
        workspace = mesh.get(Workspace, ws)
        return issuer_for(settings, workspace if isinstance(workspace, Workspace) else None)

    def order_rate(self) -> int:
        settings = MeshDocument(self.host.replica.mesh_doc.doc).settings()
        return settings.acme_order_rate if isinstance(settings, MeshSettings) else 50

    def seal(self, ws: str, secret_id: str, data: bytes) -> None:
        """Seal ``data`` in the workspace vault (creating or rotating its key first when
        needed) and broadcast."""
        vault = self.host.replica.vaults[ws]
        try:
            update = vault.put(secret_id, data)
        except SecretError:
            servers = self.host.replica.mesh.servers(ws)
            rotated = vault.maintain(servers, int(self.clock()))
            if rotated is not None:
                self.host.published(vault.persisted.name, rotated)
            update = vault.put(secret_id, data)
        if update is not None:
            self.host.published(vault.persisted.name, update)

    def open_secret(self, ws: str, secret_id: str) -> bytes:
        return self.host.replica.vaults[ws].get(secret_id)

    def drop_secret(self, ws: str, secret_id: str) -> None:
        vault = self.host.replica.vaults.get(ws)
        if vault is None:
            return
        update = vault.delete(secret_id)
        if update is not None:
            self.host.published(vault.persisted.name, update)

    # ------------------------------------------------------------------ membership

    def candidates(self, ws: str) -> dict[bytes, NodeMeta | None]:
        """Live members serving ``ws`` that take part in ACME (this node included)."""
        servers = self.host.replica.mesh.servers(ws)
        live = self.host.live()
        out = {k: m for k, m in live.items() if k in servers and (k == self.me or _capable(m))}
        if self.me in servers:
            out.setdefault(self.me, None)
        return out

    def name_of(self, key: bytes) -> str:
        return self.host.replica.mesh.verifier.names.get(key) or key.hex()[:12]

    def lease_live(
        self,
        ws: str,
        lease: Lease,
        now: float,
        candidates: Mapping[bytes, NodeMeta | None] | None = None,
    ) -> bool:
        """Whether ``lease`` still binds: unexpired and its holder alive and serving."""
        if lease.expires <= now:
            return False
        holder = _key(lease.holder)
        if holder is None:
            return False
        return holder == self.me or holder in (
            candidates if candidates is not None else self.candidates(ws)
        )

    async def wait_members(self, seconds: float) -> None:
        """Until a member event, at most ``seconds``."""
        with trio.move_on_after(seconds):
            await self._members.wait()

    def missing_tokens(self, ws: str, tokens: list[str]) -> list[str]:
        """Names of live serving nodes that do not report every one of ``tokens`` yet."""
        wanted = {token_hash(t) for t in tokens}
        missing = []
        for key, meta in sorted(self.candidates(ws).items()):
            if key == self.me:
                if not all(t in self.challenges.served for t in tokens):
                    missing.append(self.host.node_name)
            elif meta is None or meta.acme is None or not wanted <= set(meta.acme):
                missing.append(self.name_of(key))
        return missing

    # ------------------------------------------------------------------ events

    def event(self, event: str, ws: str, **fields: Any) -> None:
        self.host.events.publish(
            {"type": "certificate", "event": event, "workspace": ws,
             "node": self.host.node_name, **fields}
        )  # fmt: skip

    # ------------------------------------------------------------------ passes

    def _sync_challenges(self) -> None:
        now = self.clock()
        wanted: dict[str, str] = {}
        for persisted in self.host.replica.workspace_docs.values():
            found = read_map(persisted.doc, records.CHALLENGES, ChallengeRecord.loads)
            for token, rec in found.items():
                if rec.expires > now:
                    wanted[token] = rec.key_authorization
        if self.challenges.sync(wanted):
            self.host.meta_dirty()

    def _pass(self, now: float) -> None:
        self._next = now + _PASS_PERIOD
        counts: dict[str, int] = {}
        for ws in sorted(self.host.replica.workspace_docs):
            try:
                self._plan(ws, now, counts)
            except (StoreError, SecretError) as exc:
                log.warning("acme planning failed", workspace=ws, error=str(exc))
        self._install(now)
        self.metrics.snapshot = replace(self._snapshot(), subjects=counts)

    def _timer(self, at: float) -> None:
        self._next = min(self._next, at)

    def _plan(self, ws: str, now: float, counts: dict[str, int]) -> None:
        doc = self._doc(ws)
        if doc is None:
            return
        vhosts, certs = self.state(ws)
        subjects = plan.subjects(vhosts.values())
        leases = read_map(doc, records.LEASES, Lease.loads)
        statuses = read_map(doc, records.STATUS, SubjectStatus.loads)
        renew = view.floats(doc, records.RENEW)
        candidates = self.candidates(ws)
        lines = plan.lineages(subjects.values(), certs.values())
        for sid, subject in sorted(subjects.items()):
            line = lines[sid]
            status = statuses.get(sid)
            due, when = plan.due(line, status, renew.get(sid), now)
            state = status.state if status else "pending"
            if not due:
                state = "valid"
            counts[state] = counts.get(state, 0) + 1
            key = (ws, sid)
            if key in self._jobs:
                continue
            lease = leases.get(sid)
            if not due:
                self._unclaimed.pop(key, None)
                self._timer(when)
                if lease is not None and lease.holder == self.me_hex:
                    self.commit(ws, _drop_lease(sid))  # satisfied: no progress to keep
                if line and self.me == _first(plan.rank(sid, candidates)):
                    self._maybe_ari(ws, subject, line[0], status, now)
                continue
            forced = plan.forced(renew.get(sid), status)
            if status and status.retry_at > now and not forced:
                self._timer(status.retry_at)
                continue
            if lease is not None and self.lease_live(ws, lease, now, candidates):
                if lease.holder == self.me_hex:
                    self._start(ws, subject, lease.lease_id)  # resume (e.g. after a restart)
                else:
                    self._timer(lease.expires)
                continue
            avoid = None
            if lease is not None and lease.expires > 0:  # expired or dead holder, not released
                avoid = _key(lease.holder)
            since = self._unclaimed.setdefault(key, now)
            skips = int((now - since) // (2 * self.tuning.lease_ttl))  # a silent choice: next
            failures = status.failures if status else 0
            chosen = plan.choose(sid, candidates, failures + skips, avoid)
            if chosen == self.me:
                if lease is not None and lease.cert_id in certs:  # that order is done
                    lease = None
                self._take(ws, subject, lease, now)
            else:
                self._timer(now + self.tuning.lease_ttl)
        if self.me == _first(plan.rank(f"gc:{ws}", candidates)):
            self._housekeep(ws, doc, subjects, certs, leases, statuses, renew, now)

    def _take(self, ws: str, subject: plan.Subject, old: Lease | None, now: float) -> None:
        lease = Lease(
            holder=self.me_hex,
            node=self.host.node_name,
            lease_id=secrets.token_hex(8),
            expires=now + self.tuning.lease_ttl,
            taken=now,
            order_url=old.order_url if old else "",
            cert_id=old.cert_id if old else "",
            key_ref=old.key_ref if old else "",
            account=old.account if old else "",
            names=subject.names,
        )
        self.commit(ws, lambda doc: records.write(doc, records.LEASES, subject.id, lease))
        self._unclaimed.pop((ws, subject.id), None)
        log.info("acme lease taken", workspace=ws, subject=subject.id, names=list(subject.names),
                 resumes=bool(lease.order_url))  # fmt: skip
        self.event("lease-taken", ws, subject=subject.id, names=list(subject.names))
        self._start(ws, subject, lease.lease_id)

    def _start(self, ws: str, subject: plan.Subject, lease_id: str) -> None:
        from node.acme.orderer import OrderJob  # the job imports this module

        key = (ws, subject.id)
        if key in self._jobs or self._nursery is None:
            return
        job = OrderJob(self, ws, subject, lease_id)
        self._jobs[key] = job

        async def run() -> None:
            try:
                await job.run()
            except Exception as exc:
                log.exception("acme order crashed", workspace=ws, subject=subject.id)
                job.crashed(exc)
            finally:
                self._jobs.pop(key, None)
                self._wake.set()

        self._nursery.start_soon(run)

    # ------------------------------------------------------------------ housekeeping

    def _housekeep(
        self,
        ws: str,
        doc: Doc[Any],
        subjects: dict[str, plan.Subject],
        certs: dict[str, Certificate],
        leases: dict[str, Lease],
        statuses: dict[str, SubjectStatus],
        renew: dict[str, float],
        now: float,
    ) -> None:
        drop: list[Certificate] = []
        names_wanted = {n for s in subjects.values() for n in s.names}
        kept: set[str] = set()
        for subject in subjects.values():
            kept.update(c.id for c in plan.lineage(subject, certs.values())[:KEEP_LINEAGE])
        for cert in certs.values():
            if cert.source != "acme" or cert.id in kept:
                continue
            expired = cert.not_after is not None and cert.not_after.timestamp() < now
            orphan = not any(n.lower() in names_wanted for n in cert.names)
            superseded = any(plan.lineage(s, [cert]) for s in subjects.values())
            if expired or orphan or superseded:
                drop.append(cert)
        gone = [s for s in (*leases, *statuses, *renew) if s not in subjects]
        stale_leases = [s for s in gone if s in leases and not self.lease_live(ws, leases[s], now)]
        gone = [s for s in gone if s not in leases or s in stale_leases]
        challenges = read_map(doc, records.CHALLENGES, ChallengeRecord.loads)
        expired_challenges = [t for t, c in challenges.items() if c.expires <= now]
        raw = doc.get(records.CHALLENGES, type=Map)
        junk = [str(k) for k in raw if str(k) not in challenges]
        if not (drop or gone or expired_challenges or junk):
            return

        def write(d: Doc[Any]) -> None:
            wdoc = WorkspaceDocument(d)
            for cert in drop:
                wdoc.delete(Certificate, cert.id)
            for name in (records.LEASES, records.STATUS, records.RENEW):
                records.delete_many(d, name, gone)
            records.delete_many(d, records.CHALLENGES, [*expired_challenges, *junk])

        self.commit(ws, write)
        for cert in drop:
            if cert.key_ref:
                self.drop_secret(ws, cert.key_ref)
            self.event("certificate-deleted", ws, certificate=cert.id, names=list(cert.names))
        if drop:
            log.info("acme certificates deleted", workspace=ws, ids=[c.id for c in drop])

    def _maybe_ari(
        self,
        ws: str,
        subject: plan.Subject,
        cert: Certificate,
        status: SubjectStatus | None,
        now: float,
    ) -> None:
        """Ask the CA for renewal information about ``cert`` when it is time to - only
        from a CA that offers it (known per directory, asked again every 6 h)."""
        if status is not None and status.ari_certificate == cert.id and status.ari_next_check > now:
            self._timer(status.ari_next_check)
            return
        issuer = self.issuer(ws)
        if self._no_ari(issuer.directory, now):
            return
        key = (ws, subject.id)
        if key in self._ari or self._nursery is None or cert.chain_pem is None:
            return
        self._ari.add(key)
        chain = cert.chain_pem

        from node.acme.client import AcmeClient, AcmeError  # the acme library: when needed

        def ask() -> tuple[bool, tuple[float | None, float] | None]:
            client = AcmeClient(issuer.directory, generate_key(), ca_bundle=self.tuning.ca_bundle)
            offers = client.offers_renewal_info
            return offers, (client.renewal_info(chain) if offers else None)

        async def check() -> None:
            try:
                async with self._ari_limit:
                    known = self._ari_offered.get(issuer.directory)
                    if (
                        known is not None
                        and not known[0]
                        and self.clock() - known[1] < _ARI_RECHECK
                    ):
                        return  # learnt meanwhile (another subject's check)
                    try:
                        offers, answer = await trio.to_thread.run_sync(ask, abandon_on_cancel=True)
                    except AcmeError as exc:
                        log.info("no renewal information", workspace=ws, error=str(exc))
                        offers, answer = True, (None, self.clock() + _ARI_RECHECK)
                    self._ari_offered[issuer.directory] = (offers, self.clock())
                if answer is not None:
                    self._write_ari(ws, subject, cert.id, *answer)
            finally:
                self._ari.discard(key)

        self._nursery.start_soon(check)

    def _no_ari(self, directory: str, now: float) -> bool:
        """Whether ``directory`` was found lately not to offer renewal information."""
        known = self._ari_offered.get(directory)
        return known is not None and not known[0] and now - known[1] < _ARI_RECHECK

    def _write_ari(
        self, ws: str, subject: plan.Subject, cert_id: str, when: float | None, again: float
    ) -> None:
        doc = self._doc(ws)
        if doc is None:
            return
        current = read_map(doc, records.STATUS, SubjectStatus.loads).get(subject.id)
        if (current is not None and current.state != "valid") or (ws, subject.id) in self._jobs:
            return  # an order started meanwhile: its status is the one that matters
        base = current or SubjectStatus(state="valid", names=subject.names, certificate=cert_id)
        updated = replace(
            base, ari_certificate=cert_id, ari_renew_at=when or 0.0, ari_next_check=again
        )
        self.commit(ws, lambda d: records.write(d, records.STATUS, subject.id, updated))

    # ------------------------------------------------------------------ installing

    def _install(self, now: float) -> None:
        wanted: dict[str, Certificate] = {}
        where: dict[str, str] = {}
        states = {}
        for ws in sorted(self.host.replica.workspace_docs):
            _, certs = self.state(ws)
            states[ws] = certs
        ambiguous = ambiguous_certificates(
            {ws: _Certs(certs) for ws, certs in states.items()}  # type: ignore[misc]
        )
        for ws, certs in states.items():
            for cert_id, cert in certs.items():
                if cert_id in ambiguous or cert.chain_pem is None or cert.key_ref is None:
                    continue
                wanted[cert_id] = cert
                where[cert_id] = ws

        def open_key(cert: Certificate) -> bytes:
            assert cert.key_ref is not None
            return self.open_secret(where[cert.id], cert.key_ref)

        before = dict(self.installer.errors)
        changed = self.installer.sync(wanted, open_key)
        changed |= self.installer.copy_manual()
        for cert_id, error in self.installer.errors.items():
            if before.get(cert_id) != error:
                log.warning("certificate not installed", certificate=cert_id, error=error)
                self.event("install-failed", where.get(cert_id, ""), certificate=cert_id,
                           error=error)  # fmt: skip
        if changed:
            log.info("certificates installed", ids=sorted(self.installer.installed))
            self.event("installed", "", certificates=sorted(self.installer.installed))
            self.host.submit()
        if self.installer.collect(self._referenced):
            self.host.submit()
        self._expiry_events(states, now)

    def _expiry_events(self, states: dict[str, dict[str, Certificate]], now: float) -> None:
        seen = set()
        for ws, certs in states.items():
            for cert in certs.values():
                if cert.not_after is None:
                    continue
                key = (ws, cert.id)
                seen.add(key)
                end = cert.not_after.timestamp()
                start = cert.not_before.timestamp() if cert.not_before else end - 90 * 86400
                warn = min(14 * 86400.0, (end - start) / 3)
                level = "expired" if end <= now else "expiring" if end - now <= warn else "ok"
                if level != self._expiry_level.get(key, "ok") and level != "ok":
                    self.event(f"certificate-{level}", ws, certificate=cert.id,
                               names=list(cert.names), not_after=end)  # fmt: skip
                self._expiry_level[key] = level
                if level != "ok":
                    self._timer(end if level == "expiring" else now + _PASS_PERIOD)
                else:
                    self._timer(end - warn)
        for key in set(self._expiry_level) - seen:
            del self._expiry_level[key]

    def _snapshot(self) -> CertificateSnapshot:
        expiry: dict[tuple[str, str, str, str], float] = {}
        for ws in self.host.replica.workspace_docs:
            _, certs = self.state(ws)
            for cert in certs.values():
                if cert.not_after is not None:
                    expiry[(ws, cert.id, cert.name, cert.source)] = cert.not_after.timestamp()
        return CertificateSnapshot(
            expiry=expiry,
            installed=len(self.installer.ids()),
            install_errors=len(self.installer.errors),
        )

    # ------------------------------------------------------------------ status

    def status(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Every ACME subject of the served workspaces (or one), as the documents say."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        for ws in sorted(self.host.replica.workspace_docs):
            doc = self._doc(ws)
            if doc is None or (workspace is not None and ws != workspace):
                continue
            vhosts, certs = self.state(ws)
            out.extend(
                view.subject_rows(
                    ws, doc, vhosts, certs, now, partial(self.lease_live, ws, now=now)
                )
            )
        return out

    def certificate(self, ws: str, cert: Certificate) -> dict[str, Any]:
        """One certificate's status on this node (``.../certificates/{id}/status``)."""
        return view.certificate_row(
            cert,
            self.status(ws),
            self.clock(),
            installed=cert.id in self.installer.ids(),
            install_error=self.installer.errors.get(cert.id),
        )

    def node_status(self) -> dict[str, Any]:
        """This node's side, for ``/v1/status``: installs, and the ACME subjects by state
        with every one that is not valid (at most 50) in full."""
        items = self.status()
        states: dict[str, int] = {}
        for item in items:
            states[item["state"]] = states.get(item["state"], 0) + 1
        return {
            "certificates_dir": str(self.installer.directory),
            "installed": sorted(self.installer.ids()),
            "install_errors": dict(self.installer.errors),
            "challenges_served": len(self.challenges.served),
            "ordering": sorted(f"{ws}/{sid}" for ws, sid in self._jobs),
            "acme": states,
            "attention": [i for i in items if i["state"] != "valid"][:50],
        }

    def request_renewal(self, ws: str, subject: str) -> None:
        now = self.clock()

        def write(doc: Doc[Any]) -> None:
            doc.get(records.RENEW, type=Map)[subject] = now

        self.commit(ws, write)
        self._wake.set()


class _Certs:
    """The part of a WorkspaceState render.tls.ambiguous_certificates reads."""

    def __init__(self, certificates: dict[str, Certificate]) -> None:
        self.certificates = certificates


def _capable(meta: NodeMeta | None) -> bool:
    return meta is not None and meta.acme is not None


def _first(ranked: list[bytes]) -> bytes | None:
    return ranked[0] if ranked else None


def _key(hex_key: str) -> bytes | None:
    try:
        return bytes.fromhex(hex_key)
    except ValueError:
        return None


def _drop_lease(subject: str) -> Callable[[Doc[Any]], None]:
    def write(doc: Doc[Any]) -> None:
        records.write(doc, records.LEASES, subject, None)

    return write
