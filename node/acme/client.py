"""A small synchronous ACME (RFC 8555) client over the ``acme`` library.

Every method blocks on the network: the service runs them with
``trio.to_thread.run_sync``. Orders are addressed by URL so that another node holding
the same account key can pick up an order a dead node left half done
(:meth:`AcmeClient.get_order`). Every failure is an :class:`AcmeError` whose message is
one line fit for a status field: the ACME problem (``urn:...:rateLimited: ...``), the
validation error of a challenge, or the network error.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import requests
from acme import challenges, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from node.version import __version__

__all__ = ["AcmeClient", "AcmeError", "Challenge", "Order"]

T = TypeVar("T")
_POLL = 0.25
"""Seconds between polls of an authorization or an order."""


class AcmeError(Exception):
    """An ACME step failed; ``str()`` is one line for the status."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        order_gone: bool = False,
        account_gone: bool = False,
    ) -> None:
        super().__init__(" ".join(message.split())[:400])
        self.retry_after = retry_after
        """Seconds the server asked us to wait (rate limits), when it said."""
        self.order_gone = order_gone or account_gone
        """The order cannot be continued (invalid, expired, not ours): start a new one."""
        self.account_gone = account_gone
        """The server does not know the account (a reset CA): register again."""


@dataclass(frozen=True)
class Challenge:
    """One pending challenge of an order, ready to be published and answered."""

    domain: str
    type: str
    """``http-01`` or ``dns-01``."""
    url: str
    token: str
    key_authorization: str
    """HTTP-01: the body served at ``/.well-known/acme-challenge/<token>``."""
    dns_name: str
    """DNS-01: the TXT record name (``_acme-challenge.<domain>``)."""
    dns_value: str
    """DNS-01: the TXT record value."""
    status: str


@dataclass(frozen=True)
class Order:
    url: str
    status: str
    """``pending``, ``ready``, ``processing``, ``valid`` or ``invalid``."""
    names: tuple[str, ...]
    challenges: tuple[Challenge, ...]
    """Challenges of the authorizations still pending (one per name, of the wanted type)."""
    error: str = ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, messages.Error):
        code = exc.code or (exc.typ or "error").rsplit(":", 1)[-1]
        detail = exc.detail or exc.description or ""
        sub = "; ".join(str(s.detail) for s in (exc.subproblems or ()) if s.detail)
        return f"{code}: {detail}" + (f" ({sub})" if sub else "")
    if isinstance(exc, errors.ValidationError):
        reasons = []
        for authzr in exc.failed_authzrs:
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    reasons.append(f"{authzr.body.identifier.value}: {_describe(chall.error)}")
        return "validation failed: " + ("; ".join(reasons) or "no detail")
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error talking to the ACME server: {_short(exc)}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot reach the ACME server: {_short(exc)}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the ACME server did not answer in time"
    if isinstance(exc, errors.ClientError):
        return f"unexpected answer from the ACME server: {_short(exc)}"
    return f"{type(exc).__name__}: {_short(exc)}"


def _status(value: object) -> str:
    """``messages.Status`` (or None) as its plain name: ``pending``, ``valid``..."""
    return str(getattr(value, "name", value or ""))


def _short(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _wrapped(fn: Callable[[], T], what: str) -> T:
    try:
        return fn()
    except AcmeError:
        raise
    except (errors.Error, messages.Error, requests.exceptions.RequestException) as exc:
        code = exc.code if isinstance(exc, messages.Error) else None
        raise AcmeError(
            f"{what}: {_describe(exc)}",
            retry_after=_retry_after(exc),
            order_gone=code in ("malformed", "unauthorized"),
            account_gone=code == "accountDoesNotExist",
        ) from exc
    except (ValueError, KeyError, TypeError, DeserializationError) as exc:
        raise AcmeError(f"{what}: unexpected answer from the ACME server: {_short(exc)}") from exc


class AcmeClient:
    """One account at one ACME directory (created lazily: :meth:`account`)."""

    def __init__(
        self,
        directory_url: str,
        account_key_pem: bytes,
        *,
        account_url: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        key = serialization.load_pem_private_key(account_key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise AcmeError("the account key is not an EC key")
        self.key = JWKEC(key=key)
        self.directory_url = directory_url
        self.account_url = account_url
        self._net = ClientNetwork(
            self.key,
            alg=ES256,
            verify_ssl=ca_bundle if ca_bundle else True,  # type: ignore[arg-type]
            user_agent=f"nxmesh/{__version__}",
            timeout=int(timeout),
        )
        self._client: ClientV2 | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> ClientV2:
        if self._client is None:
            directory = _wrapped(
                lambda: ClientV2.get_directory(self.directory_url, self._net),
                f"reading the directory {self.directory_url}",
            )
            self._client = ClientV2(directory, self._net)
            if self.account_url:
                self._net.account = messages.RegistrationResource(
                    body=messages.Registration(), uri=self.account_url
                )
        return self._client

    def _get(self, url: str) -> requests.Response:
        """POST-as-GET (RFC 8555 6.3)."""
        client = self.client
        return self._net.post(url, None, new_nonce_url=client.directory["newNonce"])

    @property
    def offers_renewal_info(self) -> bool:
        try:
            self.client.directory["renewalInfo"]
        except KeyError:
            return False
        return True

    # ------------------------------------------------------------------ account

    def account(self, contact: str | None) -> str:
        """Register (or find) the account of this key; returns its URL."""
        client = self.client
        if self.account_url:
            return self.account_url
        new = messages.NewRegistration.from_data(
            email=contact or None, terms_of_service_agreed=True
        )

        def register() -> str:
            try:
                regr = client.new_account(new)
            except errors.ConflictError as exists:  # the key already has an account
                url = str(exists)
                self._net.account = messages.RegistrationResource(
                    body=messages.Registration(), uri=url
                )
                return url
            return str(regr.uri)

        self.account_url = _wrapped(register, "registering the ACME account")
        return self.account_url

    # ------------------------------------------------------------------ orders

    def new_order(self, csr_pem: bytes, challenge_type: str) -> Order:
        """Place an order for the names of ``csr_pem``."""
        client = self.client
        orderr = _wrapped(lambda: client.new_order(csr_pem), "placing the order")
        if not orderr.uri:
            raise AcmeError("placing the order: the server gave no order URL")
        return self._order(orderr.uri, orderr.body, orderr.authorizations, challenge_type)

    def get_order(self, url: str, challenge_type: str) -> Order:
        """The current state of an order of this account (:class:`AcmeError` with
        ``order_gone`` when it cannot be continued)."""
        response = _wrapped(lambda: self._get(url), "reading the order")
        body = _wrapped(lambda: messages.Order.from_json(response.json()), "reading the order")
        authzrs = [
            _wrapped(partial(self._authorization, u), "reading an authorization")
            for u in body.authorizations or ()
        ]
        return self._order(url, body, authzrs, challenge_type)

    def _order(
        self,
        url: str,
        body: messages.Order,
        authzrs: Any,
        challenge_type: str,
    ) -> Order:
        names = tuple(str(i.value) for i in body.identifiers or ())
        pending: list[Challenge] = []
        for authzr in authzrs:
            authz = authzr.body
            if authz.status == messages.STATUS_VALID:
                continue
            domain = str(authz.identifier.value)
            challb = next((c for c in authz.challenges if c.chall.typ == challenge_type), None)
            if challb is None:
                offered = ", ".join(sorted({c.chall.typ for c in authz.challenges}))
                raise AcmeError(
                    f"the ACME server offers no {challenge_type} challenge for {domain} "
                    f"(offers: {offered or 'none'})"
                )
            chall = challb.chall
            token = chall.encode("token")
            if isinstance(chall, challenges.HTTP01):
                key_auth = chall.validation(self.key)
                dns_name = dns_value = ""
            elif isinstance(chall, challenges.DNS01):
                key_auth = ""
                dns_name = chall.validation_domain_name(domain)
                dns_value = chall.validation(self.key)
            else:
                raise AcmeError(f"unsupported challenge type {challenge_type}")
            pending.append(
                Challenge(
                    domain=domain,
                    type=challenge_type,
                    url=challb.uri,
                    token=token,
                    key_authorization=key_auth,
                    dns_name=dns_name,
                    dns_value=dns_value,
                    status=_status(challb.status),
                )
            )
        error = _describe(body.error) if body.error is not None else ""
        return Order(url, _status(body.status), names, tuple(pending), error)

    def answer(self, challenge: Challenge) -> None:
        """Tell the server to validate ``challenge`` (once it is published)."""
        if challenge.status not in ("pending", ""):
            return  # already answered (processing) or done
        payload: challenges.ChallengeResponse
        if challenge.type == "http-01":
            payload = challenges.HTTP01Response()
        else:
            payload = challenges.DNS01Response()

        def post() -> None:
            self._net.post(challenge.url, payload, new_nonce_url=self.client.directory["newNonce"])

        _wrapped(post, f"answering the challenge for {challenge.domain}")

    def wait_ready(self, order_url: str, deadline: float) -> str:
        """Poll the order until its authorizations are done; returns its status
        (``ready``, ``processing`` or ``valid``). :class:`AcmeError` when one failed."""
        while True:
            body = self._poll(order_url)
            status = _status(body.status)
            if status in ("ready", "processing", "valid"):
                return status
            if status == "invalid":
                raise AcmeError(
                    self._failed_authorizations(body) or "the order became invalid",
                    order_gone=True,
                )
            if time.monotonic() > deadline:
                raise AcmeError("validation did not finish in time (order still pending)")
            time.sleep(_POLL)

    def _authorization(self, url: str) -> messages.AuthorizationResource:
        body = messages.Authorization.from_json(self._get(url).json())
        return messages.AuthorizationResource(body=body, uri=url)

    def _poll(self, order_url: str) -> messages.Order:
        def read() -> messages.Order:
            order: messages.Order = messages.Order.from_json(self._get(order_url).json())
            return order

        return _wrapped(read, "polling the order")

    def _download(self, url: str) -> str:
        return _wrapped(lambda: self._get(url).text, "downloading the certificate")

    def _begin_finalization(self, body: messages.Order, order_url: str, csr_pem: bytes) -> None:
        orderr = messages.OrderResource(body=body, uri=order_url, csr_pem=csr_pem)
        _wrapped(lambda: self.client.begin_finalization(orderr), "finalizing the order")

    def _failed_authorizations(self, body: messages.Order) -> str:
        reasons = []
        for url in body.authorizations or ():
            try:
                authz = messages.Authorization.from_json(self._get(url).json())
            except Exception:  # best effort: the order error is reported anyway
                continue
            for chall in authz.challenges:
                if chall.error is not None:
                    reasons.append(f"{authz.identifier.value}: {_describe(chall.error)}")
        if not reasons and body.error is not None:
            reasons.append(_describe(body.error))
        return "validation failed: " + "; ".join(reasons) if reasons else ""

    def finalize(self, order_url: str, csr_pem: bytes, deadline: float) -> str:
        """Finalize a ready order (or pick up a finalized one) and download the chain."""
        while True:
            body = self._poll(order_url)
            status = _status(body.status)
            if status == "valid" and body.certificate:
                return self._download(str(body.certificate))
            if status == "invalid":
                reason = _describe(body.error) if body.error is not None else "no detail"
                raise AcmeError(f"the order became invalid: {reason}", order_gone=True)
            if status == "ready":
                self._begin_finalization(body, order_url, csr_pem)
                continue
            if status == "pending":
                raise AcmeError("the order is not ready to finalize (authorizations pending)")
            if time.monotonic() > deadline:
                raise AcmeError("the certificate was not issued in time")
            time.sleep(_POLL)

    # ------------------------------------------------------------------ renewal info

    def renewal_info(self, chain_pem: str) -> tuple[float | None, float]:
        """ACME Renewal Information (draft-ietf-acme-ari): (suggested renewal time or None
        when the server offers no ARI, when to ask again) as Unix times."""
        if not self.offers_renewal_info:
            return None, time.time() + 6 * 3600
        when, again = _wrapped(
            lambda: self.client.renewal_time(chain_pem.encode()), "reading renewal information"
        )
        return (_unix(when) if when is not None else None), _unix(again)


def _unix(moment: datetime.datetime) -> float:
    if moment.tzinfo is None:  # the acme library mixes naive local times in
        return moment.timestamp()
    return moment.astimezone(datetime.UTC).timestamp()
