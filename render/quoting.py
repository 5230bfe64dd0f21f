"""Quoting filters: the only way a value reaches a template's output.

nginx reads its configuration as tokens: outside quotes, whitespace separates
arguments, ``;`` ends a directive, ``{``/``}`` open and close blocks, ``#`` starts a
comment and ``\\`` escapes; inside ``"..."`` only ``"`` and ``\\`` are special. After
tokenising, many directives (``add_header``, ``proxy_set_header``, ``return``, ``root``,
``ssl_certificate``...) expand ``$name``/``${name}`` variables, and no quoting stops
that. So every free-form value is written as a double-quoted string with ``\\`` and
``"`` escaped and ``$`` spelled ``${nxm_dollar}`` (a ``geo`` variable whose value is a
literal dollar). Structured values (names, addresses, numbers) are checked against an
allow-list and written bare. What cannot be written safely raises :class:`Unrenderable`:
control characters (a newline in a header value would split the response), non-ASCII,
and tokens longer than nginx's parse buffer.

The schema rejects all of this first; these filters are the second, independent defence.
"""

from __future__ import annotations

import ipaddress
import math
import re
from functools import lru_cache

from render.model import Listen

__all__ = [
    "DOLLAR_VAR",
    "FILTERS",
    "Unrenderable",
    "cidr",
    "duration",
    "header_name",
    "ident",
    "listen",
    "location_path",
    "map_key",
    "number",
    "path",
    "quote",
    "quote_literal",
    "server_address",
    "server_name",
    "size",
    "variables",
    "whole_seconds",
]

DOLLAR_VAR = "nxm_dollar"
"""A variable (defined with ``geo``) whose value is ``$``: how a literal dollar is written."""

MAX_TOKEN = 4000
"""nginx reads configuration through a 4096-byte buffer; one token must fit in it."""

_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_IDENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
_SERVER_NAME = re.compile(rf"^(?:\*\.{_HOST}|{_HOST}\.\*|{_HOST})$")
_VARIABLES = re.compile(r"^(?:\$[a-z][a-z0-9_]*)+$")
# map's own keywords: a source value spelled like one must be escaped with a backslash
_MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})
_GLOB = frozenset("*?[]")


class Unrenderable(ValueError):
    """A value that cannot be written into nginx configuration safely."""


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise Unrenderable(f"expected a string, not {type(value).__name__}")
    return value


def _text(value: object, what: str) -> str:
    value = _str(value)
    if not _PRINTABLE.match(value):
        bad = next(c for c in value if not 0x20 <= ord(c) <= 0x7E)
        raise Unrenderable(
            f"{what} contains a character nginx config cannot carry (U+{ord(bad):04X})"
        )
    return value


def _fit(token: str, what: str) -> str:
    if len(token) > MAX_TOKEN:
        raise Unrenderable(f"{what} is longer than nginx can read in one token")
    return token


def quote(value: object) -> str:
    """A quoted string for a directive that expands variables: ``$`` stays literal."""
    return _quote(_str(value))


@lru_cache(maxsize=65536)
def _quote(value: str) -> str:
    text = _text(value, "value")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${" + DOLLAR_VAR + "}")
    return _fit(f'"{escaped}"', "value")


def quote_literal(value: object) -> str:
    """A quoted string with no ``$`` at all (for contexts where a dollar has no business)."""
    return _quote_literal(_str(value))


@lru_cache(maxsize=65536)
def _quote_literal(value: str) -> str:
    text = _text(value, "value")
    if "$" in text:
        raise Unrenderable("value must not contain '$'")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return _fit(f'"{escaped}"', "value")


def path(value: object, suffix: str = "") -> str:
    """A quoted absolute file-system path; ``suffix`` is template text appended inside the
    quotes (it may name variables, e.g. ``/${nxm_cert}.crt``)."""
    return _path(_str(value), suffix)


@lru_cache(maxsize=4096)
def _path(value: str, suffix: str) -> str:
    text = _text(value, "path")
    if not text.startswith("/"):
        raise Unrenderable(f"path {text!r} must be absolute")
    if "$" in text or _GLOB & set(text):
        raise Unrenderable(f"path {text!r} must not contain '$' or glob characters")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return _fit(f'"{escaped}{suffix}"', "path")


def location_path(value: object) -> str:
    """A quoted URI path for ``location`` (starts with ``/``, so never a modifier)."""
    return _location_path(_str(value))


@lru_cache(maxsize=65536)
def _location_path(value: str) -> str:
    text = _text(value, "location path")
    if not text.startswith("/"):
        raise Unrenderable(f"location path {text!r} must start with '/'")
    return quote_literal(text)


def server_name(value: object) -> str:
    """A host name or a wildcard (``*.example.com``, ``example.*``), lowercase, bare."""
    return _server_name(_str(value))


@lru_cache(maxsize=65536)
def _server_name(value: str) -> str:
    text = _text(value, "server name")
    if len(text) > 253 or not _SERVER_NAME.match(text):
        raise Unrenderable(f"{text!r} is not a server name nginx can match")
    return text


def map_key(value: object) -> str:
    """A server name as a ``map ... { hostnames; }`` key (keywords escaped)."""
    return _map_key(_str(value))


@lru_cache(maxsize=65536)
def _map_key(value: str) -> str:
    name = server_name(value)
    return "\\" + name if name in _MAP_KEYWORDS else name


def ident(value: object) -> str:
    """An identifier made by render/ (upstream names, certificate ids), bare."""
    return _ident(_str(value))


@lru_cache(maxsize=65536)
def _ident(value: str) -> str:
    text = _text(value, "identifier")
    if not _IDENT.match(text):
        raise Unrenderable(f"{text!r} is not a safe identifier")
    return text


def header_name(value: object) -> str:
    """An HTTP header field name (letters, digits, '-'), bare."""
    return _header_name(_str(value))


@lru_cache(maxsize=4096)
def _header_name(value: str) -> str:
    text = _text(value, "header name")
    if not _HEADER.match(text):
        raise Unrenderable(f"{text!r} is not a header name")
    return text


def variables(value: object) -> str:
    """A run of nginx variables (an upstream ``hash`` key), quoted with the ``$`` live."""
    return _variables(_str(value))


@lru_cache(maxsize=1024)
def _variables(value: str) -> str:
    text = _text(value, "hash key")
    if not _VARIABLES.match(text):
        raise Unrenderable(f"{text!r} must be nginx variables only")
    return f'"{text}"'


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(_text(value, "address"))
    except ValueError:
        raise Unrenderable(f"{value!r} is not an IP address") from None


def listen(value: Listen) -> str:
    """``127.0.0.1:80``, ``[::1]:443`` or ``80`` (every address) for ``listen``."""
    if not isinstance(value, Listen):
        raise Unrenderable(f"{value!r} is not a Listen")
    return _listen(value)


@lru_cache(maxsize=1024)
def _listen(value: Listen) -> str:
    port = _port(value.port)
    if value.address == "*":
        return port
    ip = _ip(value.address)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def server_address(host: object, port: int) -> str:
    """An upstream ``server`` address: an IP literal and a port (never a host name)."""
    return _server_address(_str(host), port)


@lru_cache(maxsize=8192)
def _server_address(host: str, port: int) -> str:
    ip = _ip(host)
    return f"[{ip}]:{_port(port)}" if ip.version == 6 else f"{ip}:{_port(port)}"


def cidr(value: object) -> str:
    """An ``allow``/``deny`` source: a network, or ``all``."""
    if value == "all":
        return value
    try:
        return str(ipaddress.ip_network(_text(value, "network"), strict=False))
    except ValueError:
        raise Unrenderable(f"{value!r} is not an IP network") from None


def _port(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise Unrenderable(f"{value!r} is not a port")
    return str(value)


def number(value: int) -> str:
    """A non-negative whole number."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unrenderable(f"{value!r} is not a whole number >= 0")
    return str(value)


def duration(seconds: float) -> str:
    """Seconds as an nginx time (``30s``, ``250ms``): whole milliseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise Unrenderable(f"{seconds!r} is not a duration")
    if not math.isfinite(seconds) or seconds < 0:
        raise Unrenderable(f"{seconds!r} is not a duration")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def whole_seconds(seconds: float) -> str:
    """Seconds for parameters nginx reads in whole seconds (``fail_timeout``): rounded
    up, so a short non-zero timeout stays non-zero."""
    duration(seconds)
    return f"{math.ceil(round(seconds * 1000) / 1000)}s"


def size(value: int) -> str:
    """Bytes as an nginx size (``10m``, ``512k``, ``1000``)."""
    number(value)
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


FILTERS = {
    "q": quote,
    "ql": quote_literal,
    "path": path,
    "location_path": location_path,
    "server_name": server_name,
    "map_key": map_key,
    "ident": ident,
    "header_name": header_name,
    "variables": variables,
    "listen": listen,
    "server_address": server_address,
    "cidr": cidr,
    "number": number,
    "duration": duration,
    "whole_seconds": whole_seconds,
    "size": size,
}
"""Every filter templates may use, by name."""
