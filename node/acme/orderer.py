"""One certificate order by the node holding the subject's lease.

Steps (each network step in a worker thread; the lease is checked before each):

1. wait ``settle`` seconds, then confirm the lease is still ours (two nodes that took it
   at once converge on one record: the other backs off before ordering anything);
2. keep the lease alive (renewed every third of its lifetime) while working;
3. the account of the workspace's directory: opened from the vault, or registered and
   sealed;
4. the certificate key: the lease's (a predecessor's, sealed) or a fresh one, sealed
   and recorded in the lease *before* any order exists;
5. the order: the lease's order when it can still be continued, else a new one (counted
   against the mesh-wide rate cap), whose URL goes into the lease at once;
6. challenges: HTTP-01 records published in the workspace document, then a bounded wait
   until every live serving node reports them served; or DNS-01 records through the
   provider. Then the challenges are answered and the order polled until ready;
7. finalize, download the chain, check it against the key, and store the certificate,
   the status and the released lease in one update; remove the challenge records.

Any failure records the error and a backoff in the subject's status (every node honours
it) and releases the lease, keeping the order's progress for whoever tries next.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import structlog
import trio
from pycrdt import Doc, Map

from crdt.documents import WorkspaceDocument
from crdt.schema import Certificate, new_id
from crdt.secrets import SecretError
from crdt.store import StoreError
from node.acme import plan, records
from node.acme.challenges import ProviderError, make_provider
from node.acme.client import AcmeClient, AcmeError, Challenge, Order
from node.acme.keys import KeyPairError, check_pair, generate_key, make_csr
from node.acme.records import Account, ChallengeRecord, Lease, OrderMark, SubjectStatus, read_map
from node.acme.service import AcmeService
from node.acme.settings import Issuer

__all__ = ["OrderJob"]

log = structlog.get_logger("nxmesh.acme")
T = TypeVar("T")


class _LeaseLost(Exception):
    pass


class _RateLimited(Exception):
    def __init__(self, retry_at: float, count: int, cap: int) -> None:
        super().__init__(
            f"mesh-wide order cap reached: {count} orders in the last hour (cap {cap})"
        )
        self.retry_at = retry_at


class OrderJob:
    def __init__(self, service: AcmeService, ws: str, subject: plan.Subject, lease_id: str) -> None:
        self.s = service
        self.ws = ws
        self.subject = subject
        self.lease_id = lease_id
        self.started = time.monotonic()
        self.cert_id = ""
        self.key_ref = ""
        """The certificate's id and sealed key, once chosen (kept even if the lease goes)."""

    # ------------------------------------------------------------------ lease

    def lease(self) -> Lease | None:
        doc = self.s._doc(self.ws)
        if doc is None:
            return None
        return read_map(doc, records.LEASES, Lease.loads).get(self.subject.id)

    def check(self) -> Lease:
        """The lease, still ours and unexpired; :class:`_LeaseLost` otherwise."""
        lease = self.lease()
        if (
            lease is None
            or lease.holder != self.s.me_hex
            or lease.lease_id != self.lease_id
            or lease.expires <= self.s.clock()
        ):
            raise _LeaseLost
        return lease

    def update_lease(self, **changes: Any) -> Lease:
        lease = replace(self.check(), **changes)
        self.s.commit(self.ws, lambda d: records.write(d, records.LEASES, self.subject.id, lease))
        return lease

    async def _keep(self, scope: trio.CancelScope) -> None:
        """Renew the lease every third of its lifetime; cancel the order when it is lost."""
        ttl = self.s.tuning.lease_ttl
        while True:
            await trio.sleep(ttl / 3)
            try:
                self.update_lease(expires=self.s.clock() + ttl)
            except _LeaseLost:
                log.warning("acme lease lost while ordering", workspace=self.ws,
                            subject=self.subject.id)  # fmt: skip
                scope.cancel()
                return
            except StoreError as exc:
                log.warning("cannot renew the acme lease", error=str(exc))

    # ------------------------------------------------------------------ the job

    async def run(self) -> None:
        s = self.s
        await trio.sleep(s.tuning.settle)
        try:
            self.check()
        except _LeaseLost:
            log.info("acme lease went to another node", workspace=self.ws,
                     subject=self.subject.id)  # fmt: skip
            return
        keeper = trio.CancelScope()
        work = trio.CancelScope()
        assert s._nursery is not None

        async def keep() -> None:
            with keeper:
                await self._keep(work)

        s._nursery.start_soon(keep)
        try:
            with work:
                try:
                    await self._order()
                except AcmeError as exc:
                    if not exc.account_gone:
                        raise
                    self._forget_account()  # a reset CA: register again, at once
                    await self._order()
            if work.cancelled_caught:
                self._lost()
        except _LeaseLost:
            self._lost()
        except _RateLimited as exc:
            self._record_failure(str(exc), exc.retry_at, count=False)
        except (AcmeError, SecretError, StoreError, ProviderError, KeyPairError) as exc:
            retry = getattr(exc, "retry_after", None)
            keep_order = not getattr(exc, "order_gone", False)
            self._record_failure(str(exc), None, retry_after=retry, keep_order=keep_order)
        finally:
            keeper.cancel()

    def crashed(self, exc: Exception) -> None:
        """An unexpected error (a bug): recorded like a failure, so it backs off."""
        try:
            self._record_failure(f"internal error: {type(exc).__name__}: {exc}", None)
        except Exception:
            log.exception("cannot record the crash")

    def _lost(self) -> None:
        self.s.metrics.orders.labels("lost").inc()
        self.s.event("lease-lost", self.ws, subject=self.subject.id, names=list(self.subject.names))

    async def _thread(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)

    async def _order(self) -> None:
        s, ws, subject = self.s, self.ws, self.subject
        issuer = s.issuer(ws)
        lease = self.check()
        self._status(state="ordering", last_attempt=s.clock())  # the last error stays shown
        client, account = await self._account(issuer, lease)
        lease = self.update_lease(account=account)
        key_pem = self._certificate_key(lease)
        lease = self.check()
        csr = make_csr(key_pem, subject.names)
        order: Order | None = None
        if lease.order_url:
            try:
                order = await self._thread(
                    lambda: client.get_order(lease.order_url, issuer.challenge_type)
                )
            except AcmeError as exc:
                if not exc.order_gone:
                    raise
                log.info("acme order cannot be continued", url=lease.order_url, error=str(exc))
            if order is not None and order.status == "invalid":
                order = None
            if order is not None:
                log.info("acme order continued", workspace=ws, url=order.url, status=order.status)
                s.event("order-continued", ws, subject=subject.id, order=order.url)
        if order is None:
            self._check_rate()
            self.check()
            order = await self._thread(lambda: client.new_order(csr, issuer.challenge_type))
            self.update_lease(order_url=order.url)
            self._mark_order()
            log.info("acme order placed", workspace=ws, names=list(subject.names), url=order.url)
            s.event("order-placed", ws, subject=subject.id, names=list(subject.names),
                    order=order.url)  # fmt: skip
            if s.tuning.order_pause:
                await trio.sleep(s.tuning.order_pause)  # tests: a window to kill the orderer
        deadline = time.monotonic() + s.tuning.order_timeout
        if order.status == "pending":
            await self._challenges(client, issuer, order, deadline)
        self.check()
        chain = await self._thread(lambda: client.finalize(order.url, csr, deadline))
        info = check_pair(chain, key_pem)
        self._store(info, key_pem)

    # ------------------------------------------------------------------ account and key

    async def _account(self, issuer: Issuer, lease: Lease) -> tuple[AcmeClient, str]:
        s, ws = self.s, self.ws
        doc = s._doc(ws)
        assert doc is not None
        accounts = read_map(doc, records.ACCOUNTS, Account.loads)
        akey = records.account_key(issuer.directory)
        account = accounts.get(lease.account) if lease.account else None
        if account is None or account.directory != issuer.directory:
            account = accounts.get(akey)
        if account is not None and account.directory == issuer.directory:
            key_pem = s.open_secret(ws, account.key_ref)
            client = AcmeClient(issuer.directory, key_pem, account_url=account.url,
                                ca_bundle=s.tuning.ca_bundle)  # fmt: skip
            return client, records.account_key(account.directory)
        key_pem = generate_key()
        client = AcmeClient(issuer.directory, key_pem, ca_bundle=s.tuning.ca_bundle)
        url = await self._thread(lambda: client.account(issuer.contact))
        key_ref = f"acme-account-{akey}-{secrets.token_hex(4)}"
        s.seal(ws, key_ref, key_pem)
        record = Account(issuer.directory, url, key_ref, issuer.contact or "", s.clock())
        s.commit(ws, lambda d: records.write(d, records.ACCOUNTS, akey, record))
        log.info("acme account registered", workspace=ws, directory=issuer.directory, url=url)
        s.event("account-registered", ws, directory=issuer.directory)
        return client, akey

    def _forget_account(self) -> None:
        """The CA no longer knows the account (it was reset): the next attempt registers
        a new one."""
        lease = self.lease()
        if lease is None or not lease.account:
            return
        doc = self.s._doc(self.ws)
        account = read_map(doc, records.ACCOUNTS, Account.loads).get(lease.account) if doc else None
        self.s.commit(self.ws, lambda d: records.write(d, records.ACCOUNTS, lease.account, None))
        if account is not None:
            self.s.drop_secret(self.ws, account.key_ref)
        self.update_lease(account="", order_url="")  # its orders went with it
        log.info("acme account forgotten (unknown to the CA)", workspace=self.ws)

    def _certificate_key(self, lease: Lease) -> bytes:
        """The key the certificate will have: the lease's (sealed by a predecessor) or a
        new one, sealed and recorded in the lease before any order exists."""
        s, ws = self.s, self.ws
        if lease.key_ref and lease.cert_id:
            try:
                key_pem = s.open_secret(ws, lease.key_ref)
            except SecretError as exc:
                log.info("cannot open the predecessor's key; a new one", error=str(exc))
            else:
                self.cert_id, self.key_ref = lease.cert_id, lease.key_ref
                return key_pem
        self.cert_id = new_id()
        self.key_ref = f"cert-{self.cert_id}-{secrets.token_hex(4)}"
        key_pem = generate_key()
        s.seal(ws, self.key_ref, key_pem)
        self.update_lease(cert_id=self.cert_id, key_ref=self.key_ref, order_url="")
        return key_pem

    # ------------------------------------------------------------------ rate cap

    def _check_rate(self) -> None:
        s = self.s
        now = s.clock()
        marks = read_map(s.host.replica.mesh_doc.doc, records.ORDERS, OrderMark.loads)
        times = plan.recent({k: m.at for k, m in marks.items()}, now)
        cap = s.order_rate()
        if len(times) >= cap:
            raise _RateLimited(times[len(times) - cap] + 3600.0, len(times), cap)

    def _mark_order(self) -> None:
        s = self.s
        now = s.clock()
        mark = OrderMark(now, self.ws, s.host.node_name, self.subject.names)

        def write(doc: Doc[Any]) -> None:
            marks = read_map(doc, records.ORDERS, OrderMark.loads)
            old = [k for k, m in marks.items() if now - m.at > 3600.0]
            root = doc.get(records.ORDERS, type=Map)
            junk = [str(k) for k in root if str(k) not in marks]
            records.delete_many(doc, records.ORDERS, [*old, *junk])
            records.write(doc, records.ORDERS, secrets.token_hex(8), mark)

        s.commit_mesh(write)

    # ------------------------------------------------------------------ challenges

    async def _challenges(
        self, client: AcmeClient, issuer: Issuer, order: Order, deadline: float
    ) -> None:
        s, ws = self.s, self.ws
        pending = list(order.challenges)
        if issuer.dns_provider:
            provider = make_provider(issuer.dns_provider)
            try:
                for ch in pending:
                    await self._thread(partial(provider.present, ch.dns_name, ch.dns_value))
                if provider.propagation:
                    await trio.sleep(provider.propagation)
                await self._answer(client, order, pending, deadline)
            finally:
                for ch in pending:
                    try:
                        await self._thread(partial(provider.cleanup, ch.dns_name, ch.dns_value))
                    except ProviderError as exc:
                        log.warning("dns-01 cleanup failed", error=str(exc))
            return
        expires = s.clock() + s.tuning.order_timeout * 2
        recs = {
            ch.token: ChallengeRecord(ch.key_authorization, self.subject.id, expires)
            for ch in pending
        }

        def publish(doc: Doc[Any]) -> None:
            for token, rec in recs.items():
                records.write(doc, records.CHALLENGES, token, rec)

        s.commit(ws, publish)
        try:
            await self._wait_served(list(recs))
            await self._answer(client, order, pending, deadline)
        finally:
            s.commit(ws, lambda d: records.delete_many(d, records.CHALLENGES, list(recs)))

    async def _wait_served(self, tokens: list[str]) -> None:
        """Until every live node serving the workspace reports the tokens (bounded)."""
        s = self.s
        limit = trio.current_time() + s.tuning.challenge_wait
        started = trio.current_time()
        while True:
            missing = s.missing_tokens(self.ws, tokens)
            if not missing:
                log.info("acme challenge served everywhere", workspace=self.ws,
                         seconds=round(trio.current_time() - started, 3))  # fmt: skip
                return
            if trio.current_time() >= limit:
                log.warning("acme challenge not confirmed by every node; answering anyway",
                            workspace=self.ws, missing=missing)  # fmt: skip
                s.event("challenge-unconfirmed", self.ws, subject=self.subject.id,
                        nodes=missing)  # fmt: skip
                return
            await s.wait_members(min(0.5, limit - trio.current_time()))

    async def _answer(
        self, client: AcmeClient, order: Order, pending: list[Challenge], deadline: float
    ) -> None:
        self.check()
        for ch in pending:
            await self._thread(partial(client.answer, ch))
        await self._thread(lambda: client.wait_ready(order.url, deadline))

    # ------------------------------------------------------------------ outcome

    def _status(self, **fields: Any) -> None:
        s = self.s
        doc = s._doc(self.ws)
        assert doc is not None
        current = read_map(doc, records.STATUS, SubjectStatus.loads).get(self.subject.id)
        base = current or SubjectStatus(state="ordering", names=self.subject.names)
        status = replace(base, names=self.subject.names, node=s.host.node_name, **fields)
        s.commit(self.ws, lambda d: records.write(d, records.STATUS, self.subject.id, status))

    def _store(self, info: Any, key_pem: bytes) -> None:
        s, ws, subject = self.s, self.ws, self.subject
        cert_id, key_ref = self.cert_id, self.key_ref
        now = s.clock()
        cert = Certificate(
            id=cert_id,
            name=f"acme {subject.names[0][:40]} {cert_id[:6]}",
            names=subject.names,
            source="acme",
            not_before=info.not_before,
            not_after=info.not_after,
            key_ref=key_ref,
            fingerprint=info.fingerprint,
            chain_pem=info.chain_pem,
        )
        doc = s._doc(ws)
        assert doc is not None
        current = read_map(doc, records.STATUS, SubjectStatus.loads).get(subject.id)
        status = replace(
            current or SubjectStatus(state="valid"),
            state="valid",
            names=subject.names,
            error="",
            failures=0,
            retry_at=0.0,
            last_success=now,
            node=s.host.node_name,
            certificate=cert_id,
        )
        challenges = read_map(doc, records.CHALLENGES, ChallengeRecord.loads)
        mine = [t for t, c in challenges.items() if c.subject == subject.id]

        def write(d: Doc[Any]) -> None:
            WorkspaceDocument(d).put(cert)
            records.write(d, records.STATUS, subject.id, status)
            current_lease = read_map(d, records.LEASES, Lease.loads).get(subject.id)
            if current_lease is not None and current_lease.holder == s.me_hex:
                records.write(d, records.LEASES, subject.id, None)
            records.delete_many(d, records.CHALLENGES, mine)

        s.commit(ws, write)
        seconds = time.monotonic() - self.started
        s.metrics.orders.labels("issued").inc()
        s.metrics.duration.observe(seconds)
        log.info("acme certificate issued", workspace=ws, certificate=cert_id,
                 names=list(subject.names), not_after=info.not_after.isoformat(),
                 seconds=round(seconds, 2))  # fmt: skip
        s.event("issued", ws, subject=subject.id, certificate=cert_id, names=list(subject.names),
                not_after=info.not_after.isoformat(), seconds=round(seconds, 3))  # fmt: skip

    def _record_failure(
        self,
        error: str,
        retry_at: float | None,
        *,
        retry_after: float | None = None,
        keep_order: bool = True,
        count: bool = True,
    ) -> None:
        s, ws, subject = self.s, self.ws, self.subject
        now = s.clock()
        doc = s._doc(ws)
        if doc is None:
            return
        current = read_map(doc, records.STATUS, SubjectStatus.loads).get(subject.id)
        failures = (current.failures if current else 0) + (1 if count else 0)
        if retry_at is None:
            delay = plan.backoff(failures, s.tuning.retry_base, s.tuning.retry_cap)
            retry_at = now + max(delay, retry_after or 0.0)
        status = replace(
            current or SubjectStatus(state="failed"),
            state="failed" if count else "rate-limited",
            names=subject.names,
            error=error,
            failures=failures,
            retry_at=retry_at,
            last_attempt=now,
            node=s.host.node_name,
        )

        def write(d: Doc[Any]) -> None:
            records.write(d, records.STATUS, subject.id, status)
            lease = read_map(d, records.LEASES, Lease.loads).get(subject.id)
            if lease is not None and lease.lease_id == self.lease_id:
                kept = replace(lease, expires=0.0)
                if not keep_order:
                    kept = replace(kept, order_url="")
                records.write(d, records.LEASES, subject.id, kept)

        try:
            s.commit(ws, write)
        except StoreError as exc:
            log.warning("cannot record the acme failure", error=str(exc))
        outcome = "failed" if count else "rate_limited"
        s.metrics.orders.labels(outcome).inc()
        if count:
            s.metrics.failures.labels(ws).inc()
        log.warning("acme order failed", workspace=ws, names=list(subject.names), error=error,
                    failures=failures, retry_in=round(retry_at - now, 1))  # fmt: skip
        s.event("order-failed" if count else "rate-limited", ws, subject=subject.id,
                names=list(subject.names), error=error, failures=failures,
                retry_at=retry_at)  # fmt: skip
