"""Virtual hosts: server names on entry points, TLS, and locations with their actions."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from crdt.schema.base import Entity, Part
from crdt.schema.names import EntityId, EntryPointName, ServerName
from crdt.schema.values import (
    Duration,
    FilePath,
    HeaderName,
    HeaderValue,
    Name,
    PathPrefix,
    PositiveDuration,
    RedirectUrl,
    SafeText,
    Size,
    StatusCode,
    Text,
)

__all__ = ["HSTS", "TLS", "Headers", "Location", "LocationAction", "TLSMode", "VirtualHost"]

TLSMode = Literal["off", "manual", "acme"]
LocationAction = Literal["proxy", "return", "static"]
Headers = dict[HeaderName, HeaderValue]
MAX_SERVER_NAMES = 100
MAX_LOCATIONS = 200
MAX_HEADERS = 50
T = TypeVar("T")
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def _unique_headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"must have at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name in value:
        if name.lower() in seen:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(name.lower())
    return value


class HSTS(Part):
    max_age: Duration = 31536000.0
    include_subdomains: bool = False
    preload: bool = False


class TLS(Part):
    mode: TLSMode = "off"
    certificate: EntityId | None = Field(default=None, validate_default=True)
    """The certificate id; required with ``mode="manual"``, unused otherwise."""
    redirect_http: bool = Field(default=False, validate_default=True)
    """Answer plain-HTTP requests with a redirect to https."""
    hsts: HSTS | None = Field(default=None, validate_default=True)
    http2: bool = True

    @field_validator("certificate")
    @classmethod
    def _certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if mode == "manual" and value is None:
            raise ValueError("is required when mode is 'manual'")
        if mode in ("off", "acme") and value is not None:
            raise ValueError(f"is not used when mode is {mode!r}")
        return value

    @field_validator("redirect_http", "hsts")
    @classmethod
    def _needs_tls(cls, value: object, info: ValidationInfo) -> object:
        if info.data.get("mode") == "off" and value not in (None, False):
            raise ValueError("needs TLS (mode 'manual' or 'acme')")
        return value


class Location(Part):
    path: PathPrefix
    match: Literal["prefix", "exact"] = "prefix"
    action: LocationAction = "proxy"
    upstream: EntityId | None = Field(default=None, validate_default=True)
    """``proxy``: the upstream id requests go to."""
    status: StatusCode | None = Field(default=None, validate_default=True)
    """``return``: the status code (301/302/303/307/308 need ``url``)."""
    url: RedirectUrl | None = Field(default=None, validate_default=True)
    """``return`` with a redirect status: where to."""
    text: SafeText | None = Field(default=None, validate_default=True)
    """``return`` with a non-redirect status: an optional body."""
    root: FilePath | None = Field(default=None, validate_default=True)
    """``static``: the directory served."""
    request_headers: Headers = Field(default_factory=dict)
    response_headers: Headers = Field(default_factory=dict)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _for_action(value, info, "proxy")

    @field_validator("status")
    @classmethod
    def _status(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _for_action(value, info, "return")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        action, status = info.data.get("action"), info.data.get("status")
        if action == "return" and status in _REDIRECT_CODES and value is None:
            raise ValueError(f"is required with status {status}")
        if value is not None and (action != "return" or status not in _REDIRECT_CODES):
            raise ValueError("is only used by a 'return' with a redirect status (301-308)")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        action, status = info.data.get("action"), info.data.get("status")
        if value is not None and (action != "return" or status in _REDIRECT_CODES):
            raise ValueError("is only used by a 'return' with a non-redirect status")
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _for_action(value, info, "static")

    @field_validator("request_headers", "response_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _unique_headers(value)


def _for_action(value: T | None, info: ValidationInfo, action: str) -> T | None:
    current = info.data.get("action")
    if current is None:  # the action itself was invalid; it is reported on its own
        return value
    if current == action and value is None:
        raise ValueError(f"is required when action is {action!r}")
    if current != action and value is not None:
        raise ValueError(f"is only used when action is {action!r}")
    return value


class VirtualHost(Entity):
    COLLECTION = "virtual_hosts"

    name: Name
    description: Text = ""
    enabled: bool = True
    server_names: tuple[ServerName, ...] = Field(min_length=1, max_length=MAX_SERVER_NAMES)
    entry_points: tuple[EntryPointName, ...] = Field(default=("http",), min_length=1)
    tls: TLS = TLS()
    locations: tuple[Location, ...] = Field(min_length=1, max_length=MAX_LOCATIONS)
    request_headers: Headers = Field(default_factory=dict)
    """Set on requests proxied upstream (``proxy_set_header``)."""
    response_headers: Headers = Field(default_factory=dict)
    """Added to responses (``add_header ... always``)."""
    client_max_body_size: Size | None = None
    proxy_connect_timeout: PositiveDuration | None = None
    proxy_read_timeout: PositiveDuration | None = None
    proxy_send_timeout: PositiveDuration | None = None
    websocket: bool = False
    """Pass ``Upgrade``/``Connection`` so WebSocket connections work through proxies."""
    access_list: EntityId | None = None

    @field_validator("server_names")
    @classmethod
    def _server_names(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a name")
        return value

    @field_validator("entry_points")
    @classmethod
    def _entry_points(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an entry point")
        return value

    @field_validator("tls")
    @classmethod
    def _acme_names(cls, value: TLS, info: ValidationInfo) -> TLS:
        names = info.data.get("server_names") or ()
        if value.mode == "acme":
            bad = [n for n in names if "*" in n]
            if bad:
                raise ValueError(f"ACME (HTTP-01) cannot issue wildcard names such as {bad[0]}")
        return value

    @field_validator("locations")
    @classmethod
    def _locations(cls, value: tuple[Location, ...]) -> tuple[Location, ...]:
        seen: set[tuple[str, str]] = set()
        for i, loc in enumerate(value):
            key = (loc.match, loc.path)
            if key in seen:
                raise ValueError(f"location [{i}] repeats {loc.match} path {loc.path}")
            seen.add(key)
        return value

    @field_validator("request_headers", "response_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _unique_headers(value)
