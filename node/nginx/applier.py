"""The applier: rendered trees to a running, verified nginx - or a clear failure.

Pipeline (one pass, under a lock)::

    (wait for the loop to be idle, <= 50 ms)
    build(exclude=frozenset()) -> Rendered
      unchanged revision?          -> nothing to do
      stage                        -> prefix/conf.staging-N/ (a thread unless small)
      nginx -t                     -> rejected: bisect over units, quarantine the culprits
      commit + swap                -> prefix/conf -> conf.N-<rev>
      reload (HUP) + verify        -> new workers, no emerg/alert
      else swap back + reload      -> the last good tree keeps serving
      publish the status
      prune (prune_delay later)    -> keep the newest ``keep_trees``

Every failure ends in an :class:`ApplyResult` and :class:`ApplierStatus` with state
``failed``, where it failed, why, and nginx's own message; nothing raises out of a pass
except cancellation. See docs/applier.md.
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import structlog
import trio
from prometheus_client import CollectorRegistry

from node.nginx import drift
from node.nginx.bisect import Probe, bisect, budget
from node.nginx.check import CheckResult, nginx_test
from node.nginx.config import NginxSettings
from node.nginx.debounce import Debouncer
from node.nginx.metrics import Metrics
from node.nginx.server import ExternalNginx, NginxServer, ServerDown
from node.nginx.stage import Manifest, Staged, TreeStore
from node.nginx.status import (
    ApplierStatus,
    ApplyResult,
    DriftReport,
    Quarantined,
    StatusCell,
    SupervisorStatus,
)
from node.nginx.supervisor import Supervisor
from node.nginx.verify import reload_and_verify
from render.model import Rendered

try:  # trio.testing's, without what importing trio.testing loads (7 MB in a daemon)
    from trio._core import wait_all_tasks_blocked  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a trio that moved it
    from trio.testing import wait_all_tasks_blocked

__all__ = ["Applier", "Build"]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")
_IDLE_WAIT = 0.05

Build = Callable[[frozenset[str]], Rendered | Awaitable[Rendered]]
"""Render the desired state without the given unit keys. May be async (the daemon can
render in a thread so that a 10,000-vhost render does not stall the trio loop)."""


class _Failure(Exception):
    def __init__(self, stage: str, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.stage, self.reason, self.message = stage, reason, message
        self.rolled_back = False


@dataclass(frozen=True, slots=True)
class _Applied:
    """The tree nginx serves (verified), its manifest, and its files when we have them
    (after a restart only the manifest is known)."""

    tree: Path
    manifest: Manifest
    rendered: Rendered | None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


class Applier:
    """Applies rendered trees; a service: ``await nursery.start(applier.run)``.

    ``submit()`` on every change of the desired state; changes are coalesced and applied
    in the background. ``apply_now()`` and ``check_drift()`` act at once.
    """

    def __init__(
        self,
        settings: NginxSettings,
        build: Build,
        *,
        server: NginxServer | None = None,
        metrics: Metrics | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        on_status: Callable[[ApplierStatus], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics(registry)
        if settings.mode == "render-only":
            if server is not None:
                raise ValueError("render-only mode runs no nginx")
        elif settings.mode == "managed":
            if server is None:
                raise ValueError("managed mode needs the Supervisor that runs nginx")
        elif server is None:
            server = ExternalNginx(settings, metrics=self.metrics)
        self.server = server
        self._build = build
        self.tree = TreeStore(settings.prefix, keep=settings.keep_trees)
        self.debouncer = Debouncer(
            settings.min_quiet, settings.max_quiet, settings.splay, rng, settings.lead_after
        )
        self.cell: StatusCell[ApplierStatus] = StatusCell(ApplierStatus())
        if on_status is not None:
            self.cell.callbacks.append(on_status)
        if isinstance(server, Supervisor):
            server.cell.callbacks.append(self._server_changed)
        self._lock = trio.Lock()
        self._applied: _Applied | None = None
        self._prepared = False
        self._desired: str | None = None
        """The revision of the full render of the pass in progress (or the last one)."""
        self._retry_kick = trio.Event()
        self._prune_wanted = trio.Event()
        self._running = False
        self.passes = 0
        """Completed passes of the pipeline (``apply_now`` calls, debounced or not)."""
        self.prunes: StatusCell[int] = StatusCell(0)
        """Prunings of old trees done so far."""

    # -- interface -----------------------------------------------------------------------

    @property
    def status(self) -> ApplierStatus:
        return self.cell.value

    @property
    def applied(self) -> tuple[Path, Manifest] | None:
        """The serving tree's directory and manifest (None before the first apply)."""
        applied = self._applied
        return None if applied is None else (applied.tree, applied.manifest)

    def submit(self) -> None:
        """The desired state changed: apply it at once after a quiet spell, else after
        the quiet period (:class:`~node.nginx.debounce.Debouncer`)."""
        self.debouncer.poke()

    async def apply_now(self, *, force: bool = False) -> ApplyResult:
        """One pass of the pipeline now. ``force`` applies even an unchanged revision."""
        async with self._lock:
            start = trio.current_time()
            try:
                await self._prepare()
                result = await self._apply(force=force, start=start)
            except _Failure as failure:
                result = self._failed(failure, start)
            except Exception as exc:
                log.exception("nginx.apply_internal_error")
                result = self._failed(_Failure("internal", f"internal error: {exc!r}"), start)
            self._publish(result)
            self.passes += 1
            if result.changed or result.state == "failed":
                await self._prune_later()
            return result

    async def check_drift(self, *, repair: bool = True) -> DriftReport:
        """Compare the applied tree with its recorded hashes; restore it if it drifted."""
        async with self._lock:
            applied = self._applied
            if applied is None:
                return DriftReport()
            try:
                report = await trio.to_thread.run_sync(
                    drift.scan, self.tree, applied.tree, applied.manifest.files
                )
            except OSError as exc:  # unreadable is drifted too: reinstall
                report = DriftReport(link=f"cannot read {applied.tree.name}: {_describe(exc)}")
            if report.clean:
                return report
            log.warning(
                "nginx.drift",
                changed=report.changed,
                missing=report.missing,
                added=report.added,
                link=report.link,
            )
            if not repair:
                return report
            start = trio.current_time()
            try:
                result = await self._restore(applied, start)
            except _Failure as failure:
                result = self._failed(failure, start)
            except Exception as exc:
                log.exception("nginx.drift_internal_error")
                result = self._failed(_Failure("internal", f"internal error: {exc!r}"), start)
            repaired = result.state in ("ok", "quarantined")
            if repaired:
                self.metrics.drift_repairs.inc()
            self._publish(result, drift=report.paths())
            await self._prune_later()
            return replace(report, repaired=repaired, result=result)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply at once, then on every coalesced batch of ``submit()``s; check drift
        every ``drift_interval``; retry a failed revision every ``retry_interval``."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            self._running = True
            nursery.start_soon(self._prune_loop)
            if self.settings.drift_interval:
                nursery.start_soon(self._drift_loop, self.settings.drift_interval)
            nursery.start_soon(self._retry_loop)
            # An external nginx may run an older tree than the one recorded (a daemon
            # that died between swap and reload): the first pass reloads it regardless.
            await self.apply_now(force=self.settings.mode == "external")
            while True:
                coalesced = await self.debouncer.wait()
                log.debug("nginx.apply_batch", changes=coalesced)
                await self._loop_idle()
                await self.apply_now()

    # -- background loops ------------------------------------------------------------------

    async def _drift_loop(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await self.check_drift()

    @staticmethod
    async def _loop_idle() -> None:
        """Until every other task of the loop waits (at most ``_IDLE_WAIT``): a small
        tree's pass runs on the loop's thread without yielding, and the API request that
        caused it should answer its client first, not after the pass."""
        with trio.move_on_after(_IDLE_WAIT):
            await wait_all_tasks_blocked()

    async def _prune_loop(self) -> None:
        try:
            while True:
                await self._prune_wanted.wait()
                self._prune_wanted = trio.Event()
                await trio.sleep(self.settings.prune_delay)
                async with self._lock:
                    await self._prune()
        finally:
            self._running = False

    async def _prune_later(self) -> None:
        """Prune after ``prune_delay`` from the run loop, else now (the caller holds the
        lock): the pass that made a tree never waits for its predecessors' deletion."""
        if self._running and self.settings.prune_delay > 0:
            self._prune_wanted.set()
        else:
            await self._prune()

    async def _retry_loop(self) -> None:
        while True:
            await self.cell.wait_for(lambda s: s.state == "failed")
            with trio.move_on_after(self.settings.retry_interval):
                await self._retry_kick.wait()
            self._retry_kick = trio.Event()
            if self.cell.value.state == "failed":
                await self.apply_now()

    def _server_changed(self, status: SupervisorStatus) -> None:
        # nginx came up after a failed start: try the revision again now.
        current = self.cell.value
        if status.state == "running" and current.state == "failed" and current.stage == "start":
            self._retry_kick.set()

    # -- the pipeline ----------------------------------------------------------------------

    async def _prepare(self) -> None:
        if self._prepared:
            return
        try:
            await trio.to_thread.run_sync(self.tree.prepare)
        except OSError as exc:
            raise _Failure(
                "stage", f"cannot prepare {self.settings.prefix}: {_describe(exc)}"
            ) from exc
        tree = await trio.to_thread.run_sync(self.tree.current)
        manifest = await trio.to_thread.run_sync(self.tree.manifest, tree) if tree else None
        if tree is not None and manifest is not None:
            # A tree applied before a restart: it serves (managed nginx starts on it).
            self._applied = _Applied(tree, manifest, None)
            quarantined = tuple(Quarantined(u, r) for u, r in manifest.quarantined)
            self.cell.set(
                ApplierStatus(
                    state="quarantined" if quarantined else "ok",
                    revision=manifest.revision,
                    desired_revision=manifest.desired_revision,
                    quarantined=quarantined,
                    updated_at=time.time(),
                    applied_at=manifest.applied_at,
                )
            )
            self.metrics.applied_at = manifest.applied_at
            self.metrics.quarantined.set(len(quarantined))
        self._prepared = True

    async def _render(self, exclude: frozenset[str]) -> Rendered:
        try:
            result = self._build(exclude)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            raise _Failure("render", f"render failed: {_describe(exc)}") from exc
        if not isinstance(result, Rendered):
            raise _Failure("render", f"render returned {type(result).__name__}, not Rendered")
        return result

    async def _stage(self, rendered: Rendered) -> Staged:
        # Files the serving tree holds already are linked from it, not written again.
        base = self._applied.tree if self._applied is not None else None
        try:
            small = len(rendered.files) <= self.settings.inline_files
            return await self._blocking(small, self.tree.stage, rendered.files, base)
        except (OSError, ValueError) as exc:
            raise _Failure("stage", f"staging failed: {_describe(exc)}") from exc

    @staticmethod
    async def _blocking(small: bool, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)``, file I/O: at once when ``small`` (see ``inline_files`` and
        ``inline_flushes``), else in a worker thread."""
        if small:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)

    async def _discard(self, staged: Staged) -> None:
        await trio.to_thread.run_sync(self.tree.discard, staged.path)

    async def _test(self, staged: Staged) -> CheckResult:
        assert self.server is not None
        result = await nginx_test(self.settings, staged.path, run_as=self.server.run_as())
        self.metrics.test_duration.observe(result.duration)
        return result

    async def _apply(self, *, force: bool, start: float) -> ApplyResult:
        full = await self._render(frozenset())
        status = self.cell.value
        if (
            not force
            and full.revision == status.desired_revision
            and status.state in ("ok", "quarantined")
        ):
            return ApplyResult(
                state=status.state,
                revision=status.revision,
                desired_revision=full.revision,
                quarantined=status.quarantined,
            )
        self._desired = full.revision
        log.info("nginx.apply", desired=full.revision[:12], force=force)
        staged = await self._stage(full)
        if self.server is None:
            return await self._activate(staged, full, full.revision, (), 0, start)
        check = await self._test(staged)
        if check.ok:
            return await self._activate(staged, full, full.revision, (), 1, start)
        await self._discard(staged)
        units = sorted(k for k, u in full.units.items() if u.state != "skipped")
        if check.kind != "invalid" or not units:
            raise _Failure("test", check.reason, check.message)
        return await self._bisect(full, units, check, start)

    async def _bisect(
        self, full: Rendered, units: list[str], check: CheckResult, start: float
    ) -> ApplyResult:
        """Apply everything but the units nginx rejects."""
        passing: tuple[frozenset[str], Staged, Rendered] | None = None

        async def probe(exclude: frozenset[str]) -> Probe:
            nonlocal passing
            rendered = await self._render(exclude)
            staged = await self._stage(rendered)
            result = await self._test(staged)
            if not result.ok:
                await self._discard(staged)
                if result.kind != "invalid":  # nginx cannot judge: no unit is to blame
                    raise _Failure("test", result.reason, result.message)
                return Probe(False, result.message)
            if passing is not None:
                await self._discard(passing[1])
            passing = (exclude, staged, rendered)
            return Probe(True)

        limit = budget(len(units), self.settings.bisect_max_bad)
        try:
            found = await bisect(units, probe, failure=check.message, max_probes=limit)
        except BaseException:
            if passing is not None:
                with trio.CancelScope(shield=True):
                    await self._discard(passing[1])
            raise
        if found.base_error:
            raise _Failure(
                "test", "nginx -t rejects the configuration even without any unit", found.base_error
            )
        assert passing is not None
        if found.exhausted and self._applied is not None:
            # More units fail than the budget can isolate: applying only the tested part
            # would take untested - likely healthy - units off the air. Keep the last good
            # tree (a node's first tree has none: then some service beats none).
            await self._discard(passing[1])
            blamed = {u: r for u, r in found.bad.items() if not r.startswith("not tested")}
            raise _Failure(
                "test",
                f"nginx -t rejects more units than bisection can isolate in {found.probes}"
                f" runs; first found: {', '.join(sorted(blamed))}",
                "\n".join(f"{u}: {r}" for u, r in sorted(blamed.items())),
            )
        assert passing[0] == found.exclude, "bisect ends on its last passing probe"
        quarantined = tuple(Quarantined(u, found.bad[u]) for u in sorted(found.bad))
        log.warning(
            "nginx.quarantine",
            units={q.unit: q.reason for q in quarantined},
            probes=found.probes,
            exhausted=found.exhausted,
        )
        _, staged, rendered = passing
        return await self._activate(
            staged, rendered, full.revision, quarantined, 1 + found.probes, start
        )

    async def _activate(
        self,
        staged: Staged,
        rendered: Rendered,
        desired: str,
        quarantined: tuple[Quarantined, ...],
        checks: int,
        start: float,
    ) -> ApplyResult:
        """Commit, swap, reload and verify a tested tree; roll back on failure."""
        manifest = Manifest(
            revision=rendered.revision,
            desired_revision=desired,
            files=staged.hashes,
            quarantined=tuple((q.unit, q.reason) for q in quarantined),
        )
        previous = self._applied
        try:
            flushes = staged.flushes
            small = flushes is not None and flushes <= self.settings.inline_flushes
            tree = await self._blocking(small, self.tree.install, staged, manifest)
        except OSError as exc:
            await self._discard(staged)
            raise _Failure("stage", f"installing the tree failed: {_describe(exc)}") from exc
        reloaded = False
        if self.server is not None:
            try:
                reloaded = await self._bring_up()
            except _Failure as failure:
                failure.rolled_back = await self._roll_back(previous)
                failure.message = failure.message or failure.reason
                raise
        self._applied = _Applied(tree, manifest, rendered)
        self.metrics.applied_at = manifest.applied_at
        log.info(
            "nginx.applied",
            revision=rendered.revision[:12],
            quarantined=len(quarantined),
            reloaded=reloaded,
            seconds=round(trio.current_time() - start, 3),
        )
        return ApplyResult(
            state="quarantined" if quarantined else "ok",
            revision=rendered.revision,
            desired_revision=desired,
            changed=True,
            reloaded=reloaded,
            quarantined=quarantined,
            checks=checks,
            duration=trio.current_time() - start,
        )

    async def _bring_up(self) -> bool:
        """Make nginx serve the swapped-in tree; True when that took a reload."""
        assert self.server is not None
        pid = self.server.master_pid()
        if pid is None:
            try:
                if await self.server.ensure_running():
                    return False  # started fresh on the new tree
            except ServerDown as exc:
                raise _Failure("start", "nginx is not running", str(exc)) from exc
            pid = self.server.master_pid()
            if pid is None:
                raise _Failure("start", "nginx is not running")
        outcome = await reload_and_verify(
            pid,
            self.settings.error_log_path,
            limit=self.settings.verify_timeout,
            settle=self.settings.verify_settle,
        )
        self.metrics.reloads.labels(outcome="ok" if outcome.ok else "failed").inc()
        if not outcome.ok:
            log.error("nginx.reload_failed", reason=outcome.reason, nginx=outcome.message)
            raise _Failure("reload", outcome.reason, outcome.message)
        self.metrics.reload_duration.observe(outcome.duration)
        return True

    async def _roll_back(self, previous: _Applied | None) -> bool:
        """Swap the last good tree back in and reload nginx onto it."""
        if previous is None:
            return False  # nothing was ever good: leave the tested tree for nginx to use
        await trio.to_thread.run_sync(self.tree.swap, previous.tree)
        pid = self.server.master_pid() if self.server is not None else None
        if pid is not None:
            outcome = await reload_and_verify(
                pid,
                self.settings.error_log_path,
                limit=self.settings.verify_timeout,
                settle=self.settings.verify_settle,
                check_log=False,
            )
            self.metrics.reloads.labels(outcome="rollback").inc()
            if not outcome.ok:
                # Most likely the old workers still run the old tree (a failed reload
                # keeps them); say so loudly, there is nothing better to swap to.
                log.error("nginx.rollback_unverified", reason=outcome.reason)
            else:
                self.metrics.reload_duration.observe(outcome.duration)
        log.warning("nginx.rolled_back", revision=previous.manifest.revision[:12])
        return True

    async def _restore(self, applied: _Applied, start: float) -> ApplyResult:
        """Reinstall the applied tree from its files (or re-render them after a restart)."""
        if applied.rendered is None:
            return await self._apply(force=True, start=start)
        staged = await self._stage(applied.rendered)
        checks = 0
        if self.server is not None:
            check = await self._test(staged)
            checks = 1
            if not check.ok:
                await self._discard(staged)
                return await self._apply(force=True, start=start)
        quarantined = tuple(Quarantined(u, r) for u, r in applied.manifest.quarantined)
        return await self._activate(
            staged,
            applied.rendered,
            applied.manifest.desired_revision,
            quarantined,
            checks,
            start,
        )

    async def _prune(self) -> None:
        """Delete old trees; the newest ``keep_trees`` (>= 2) stay, and the serving one."""
        protect = [self._applied.tree if self._applied else None]
        try:
            removed = await trio.to_thread.run_sync(self.tree.prune, protect)
        except OSError as exc:  # a full disk must not turn a good apply into a failure
            log.warning("nginx.prune_failed", error=_describe(exc))
            return
        if removed:
            log.debug("nginx.pruned", trees=[p.name for p in removed])
        self.prunes.set(self.prunes.value + 1)

    # -- reporting -------------------------------------------------------------------------

    def _failed(self, failure: _Failure, start: float) -> ApplyResult:
        applied = self._applied
        return ApplyResult(
            state="failed",
            revision=applied.manifest.revision if applied else None,
            desired_revision=self._desired,
            rolled_back=failure.rolled_back,
            quarantined=tuple(Quarantined(u, r) for u, r in applied.manifest.quarantined)
            if applied
            else (),
            stage=failure.stage,
            reason=failure.reason,
            nginx_message=failure.message,
            duration=trio.current_time() - start,
        )

    def _publish(self, result: ApplyResult, *, drift: tuple[str, ...] = ()) -> None:
        previous = self.cell.value
        if result.state == "failed":
            self.metrics.failures.labels(stage=result.stage).inc()
            log.error(
                "nginx.apply_failed",
                stage=result.stage,
                reason=result.reason,
                nginx=result.nginx_message,
            )
        elif not result.changed and not drift:
            return  # unchanged: nothing new to say
        if result.changed:
            self.metrics.apply_duration.observe(result.duration)
        self.metrics.quarantined.set(len(result.quarantined))
        self.cell.set(
            ApplierStatus(
                state=result.state,
                revision=result.revision,
                desired_revision=result.desired_revision or previous.desired_revision,
                quarantined=result.quarantined,
                stage=result.stage,
                reason=result.reason,
                nginx_message=result.nginx_message,
                drift=drift or previous.drift,
                updated_at=time.time(),
                duration=result.duration,
                applied_at=self._applied.manifest.applied_at if self._applied else None,
            )
        )
