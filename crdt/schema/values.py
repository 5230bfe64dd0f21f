"""Value types that reach nginx configuration (or the operator's screen).

The rule for anything rendered into nginx config is an allow-list of characters, never a
deny-list: no whitespace except where stated, no control characters, and none of
``$ ; { } " ' \\`` or backtick - so no value can open a block, end a directive, expand an
nginx variable or escape a quoted string. render/ quotes values as a second defence.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from crdt.schema.names import check_host_name, check_ip, check_server_address, whole_int

__all__ = [
    "ACME_PRESETS",
    "MAX_TEXT",
    "AcmeDirectory",
    "CertificatePem",
    "DnsProviderSpec",
    "Duration",
    "Email",
    "FilePath",
    "HashKey",
    "HeaderName",
    "HeaderValue",
    "KeyRef",
    "Name",
    "PathPrefix",
    "RedirectUrl",
    "SafeText",
    "Size",
    "Text",
    "parse_duration",
    "parse_size",
]

MAX_NAME = 64
MAX_TEXT = 1024
MAX_PATH = 1024
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 1024
MAX_URL = 2048
MAX_FILE_PATH = 255
MAX_SIZE = 2**40  # 1 TiB
MAX_DURATION = 730 * 86400.0  # two years: the longest common HSTS max-age

_FORBIDDEN = frozenset("$;{}\"'\\`")
_FORBIDDEN_SHOWN = "$ ; { } \" ' \\ `"
# categories never allowed in any string: controls, format (bidi overrides, zero-width),
# line/paragraph separators, surrogates, private use, unassigned
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _require_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")  # noqa: TRY004 - pydantic reports ValueError only
    return value


def _check_length(value: str, lo: int, hi: int) -> None:
    if len(value) < lo:
        raise ValueError("must not be empty" if lo == 1 else f"must be at least {lo} characters")
    if len(value) > hi:
        raise ValueError(f"must be at most {hi} characters")


def _check_no_controls(value: str) -> None:
    for c in value:
        if unicodedata.category(c) in _BAD_CATEGORIES:
            raise ValueError(f"must not contain control or invisible characters (U+{ord(c):04X})")


def _check_config_safe(value: str, *, spaces: bool) -> None:
    """Printable ASCII only, none of the nginx-special characters."""
    for c in value:
        if not c.isascii():
            raise ValueError("must be printable ASCII")
        if ord(c) < 0x20 or ord(c) == 0x7F:
            raise ValueError(f"must not contain control characters (U+{ord(c):04X})")
        if c == " " and not spaces:
            raise ValueError("must not contain spaces")
        if c in _FORBIDDEN:
            raise ValueError(f"must not contain {c!r} (none of {_FORBIDDEN_SHOWN})")


# --- display strings (never rendered into nginx config) ---------------------------------


def _name(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_NAME)
    _check_no_controls(value)
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _text(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 0, MAX_TEXT)
    _check_no_controls(value)
    return value


Name = Annotated[str, BeforeValidator(_name)]
"""A display name: 1-64 characters, any script, no control or invisible characters."""
Text = Annotated[str, BeforeValidator(_text)]
"""A description: up to 1024 characters, no control characters (so no newlines)."""

# --- strings rendered into nginx config -------------------------------------------------

_PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~/!*+,=:@%&]*$")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _path_prefix(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_PATH)
    if not value.startswith("/"):
        raise ValueError("must start with '/'")
    _check_config_safe(value, spaces=False)
    if not _PATH_CHARS.match(value):
        bad = next(c for c in value if not _PATH_CHARS.match(c))
        raise ValueError(f"must not contain {bad!r} (allowed: letters, digits, -._~/!*+,=:@%&)")
    if _PCT.search(value):
        raise ValueError("'%' must be followed by two hex digits")
    if ".." in value.split("/"):
        raise ValueError("must not contain '..' segments")
    return value


PathPrefix = Annotated[str, BeforeValidator(_path_prefix)]
"""A URI path: starts with '/', RFC 3986 path characters only, no '..' segment."""

_HEADER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


def _header_name(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_HEADER_NAME)
    if not _HEADER_NAME.match(value):
        raise ValueError(
            "must be letters, digits and '-' (an RFC 7230 token; '_' is dropped by nginx)"
        )
    return value


HeaderName = Annotated[str, BeforeValidator(_header_name)]


def _safe_text(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_HEADER_VALUE)
    _check_config_safe(value, spaces=True)
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


SafeText = Annotated[str, BeforeValidator(_safe_text)]
"""Printable ASCII (spaces allowed inside), 1-1024 chars, none of ``$ ; { } " ' \\ ```."""
HeaderValue = SafeText
"""A header value: :data:`SafeText` (values needing ';', like CSP, are not supported yet)."""

_URL_PATH = re.compile(r"^(?:/[A-Za-z0-9\-._~/!*+,=:@%&?#]*)?$")


def _redirect_url(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_URL)
    _check_config_safe(value, spaces=False)
    rest = value
    if value.startswith(("http://", "https://")):
        authority, slash, path = value.split("://", 1)[1].partition("/")
        rest = slash + path
        if not authority:
            raise ValueError("must name a host after http(s)://")
        if ":" in authority.rsplit("]", 1)[-1]:
            check_server_address(authority)
        elif authority.startswith("["):
            check_server_address(authority + ":1")
        elif authority.replace(".", "").isdigit():
            check_ip(authority)
        else:
            check_host_name(authority)
    elif not value.startswith("/"):
        raise ValueError("must be an absolute http(s) URL or a path starting with '/'")
    if not _URL_PATH.match(rest):
        raise ValueError("must contain only URL characters (letters, digits, -._~/!*+,=:@%&?#)")
    if _PCT.search(rest):
        raise ValueError("'%' must be followed by two hex digits")
    return value


RedirectUrl = Annotated[str, BeforeValidator(_redirect_url)]
"""A redirect target: ``http(s)://host[:port]/path?query`` or ``/path``; no variables."""

_FILE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")


def _file_path(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_FILE_PATH)
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    if not _FILE_PATH.match(value):
        raise ValueError("must contain only letters, digits, '.', '_', '-' and '/'")
    if ".." in value.split("/"):
        raise ValueError("must not contain '..' segments")
    return value


FilePath = Annotated[str, BeforeValidator(_file_path)]
"""An absolute file-system path (static root). Which directories are allowed is node policy."""

_HASH_VARS = frozenset(
    {
        "remote_addr",
        "binary_remote_addr",
        "request_uri",
        "uri",
        "host",
        "scheme",
        "server_name",
        "server_port",
        "args",
    }
)
_HASH_PREFIXES = ("http_", "cookie_", "arg_")
_HASH_TOKEN = re.compile(r"\$([a-z][a-z0-9_]*)")
STREAM_HASH_VARS = frozenset({"remote_addr", "binary_remote_addr", "server_port"})


def _hash_key(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, 128)
    pos = 0
    for m in _HASH_TOKEN.finditer(value):
        if m.start() != pos:
            break
        var = m.group(1)
        if var not in _HASH_VARS and not (
            var.startswith(_HASH_PREFIXES) and len(var) > max(len(p) for p in _HASH_PREFIXES)
        ):
            raise ValueError(f"${var} is not an allowed hash variable")
        pos = m.end()
    if pos != len(value) or pos == 0:
        raise ValueError(
            "must be one or more nginx variables such as $request_uri or $remote_addr"
            " (no other text)"
        )
    return value


HashKey = Annotated[str, BeforeValidator(_hash_key)]
"""An upstream ``hash`` key: a run of allowed variables ($remote_addr, $request_uri,
$uri, $host, $scheme, $server_name, $server_port, $args, $http_*, $cookie_*, $arg_*)."""

_KEY_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _key_ref(value: object) -> str:
    value = _require_str(value)
    if not _KEY_REF.match(value):
        raise ValueError("must be 1-128 letters, digits, '.', '_', ':' or '-'")
    return value


KeyRef = Annotated[str, BeforeValidator(_key_ref)]
"""An opaque reference to a sealed private key (never the key itself)."""

# --- sizes and durations ----------------------------------------------------------------

_SIZE = re.compile(r"^(\d{1,13})([kKmMgG]?)$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: Any) -> int:
    """``"10m"`` -> 10485760; ints (or whole floats) are bytes. Units k, m, g (1024-based)."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError("must be a size such as 512k, 10m, 1g or a number of bytes")
        size = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    else:
        size = whole_int(value)
    if not 0 <= size <= MAX_SIZE:
        raise ValueError("must be between 0 and 1024g")
    return size


_DURATION_PART = re.compile(r"(\d{1,9})(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``"250ms"`` -> 0.25, ``"1m30s"`` -> 90.0; numbers are seconds. Millisecond precision."""
    if isinstance(value, bool):
        raise ValueError("must be a duration, not a boolean")  # noqa: TRY004 - pydantic reports ValueError only
    if isinstance(value, str):
        if not value:
            raise ValueError("must not be empty")
        pos = 0
        total_ms = 0
        for m in _DURATION_PART.finditer(value):
            if m.start() != pos:
                break
            total_ms += int(m.group(1)) * round(_DURATION_UNITS[m.group(2)] * 1000)
            pos = m.end()
        if pos != len(value):
            raise ValueError("must be a duration such as 250ms, 30s, 5m, 1h or 1m30s")
        seconds = total_ms / 1000
    elif isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("must be a finite number of seconds")
        if abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
            raise ValueError("must be a whole number of milliseconds")
        seconds = round(seconds * 1000) / 1000
    else:
        raise ValueError("must be a duration such as 30s or a number of seconds")  # noqa: TRY004 - pydantic reports ValueError only
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError("must be between 0 and 730d")
    return seconds


Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes; accepts ``"512k"``, ``"10m"``, ``"1g"`` or an int."""
Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds (ms precision); accepts ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``, numbers."""


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]

Count = Annotated[int, BeforeValidator(whole_int), Field(ge=0, le=100_000)]
Weight = Annotated[int, BeforeValidator(whole_int), Field(ge=1, le=1000)]
MaxFails = Annotated[int, BeforeValidator(whole_int), Field(ge=0, le=1000)]
Tries = Annotated[int, BeforeValidator(whole_int), Field(ge=0, le=100)]
StatusCode = Annotated[int, BeforeValidator(whole_int), Field(ge=200, le=599)]

_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}$")


def _email(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 3, 254)
    local, sep, domain = value.rpartition("@")
    if not sep or not _EMAIL_LOCAL.match(local):
        raise ValueError("must be an e-mail address such as ops@example.com")
    return f"{local}@{check_host_name(domain)}"


Email = Annotated[str, BeforeValidator(_email)]
"""An ASCII e-mail address (the ACME account contact)."""


# --- ACME --------------------------------------------------------------------------------

ACME_PRESETS: dict[str, str] = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
"""Issuers known by name: an ACME directory may be given as one of these names."""


def _acme_directory(value: object) -> str:
    value = _require_str(value)
    if value in ACME_PRESETS:
        return value
    if not value.startswith(("https://", "http://")):
        presets = ", ".join(sorted(ACME_PRESETS))
        raise ValueError(f"must be an http(s) URL of an ACME directory or one of {presets}")
    return _redirect_url(value)


AcmeDirectory = Annotated[str, BeforeValidator(_acme_directory)]
"""An ACME directory URL, or a preset name (:data:`ACME_PRESETS`)."""

_DNS_PROVIDER = re.compile(
    r"^[a-z0-9][a-z0-9-]{0,31}(?::[A-Za-z0-9\-._~/!*+,=:@%&?#\[\]]{1,512})?$"
)


def _dns_provider(value: object) -> str:
    value = _require_str(value)
    if not _DNS_PROVIDER.match(value):
        raise ValueError(
            "must be PROVIDER or PROVIDER:ARGUMENT (e.g. challtestsrv:http://127.0.0.1:8055); "
            "the argument is URL characters only"
        )
    return value


DnsProviderSpec = Annotated[str, BeforeValidator(_dns_provider)]
"""A DNS-01 provider and its (non-secret) argument: ``challtestsrv:http://host:8055``."""

MAX_PEM = 64 * 1024
_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----\r?\n?"
)


def _certificate_pem(value: object) -> str:
    value = _require_str(value)
    _check_length(value, 1, MAX_PEM)
    rest = _PEM_BLOCK.sub("", value.strip() + "\n")
    if rest.strip() or "BEGIN CERTIFICATE" not in value:
        raise ValueError("must be PEM certificates only (leaf first, then intermediates)")
    return value


CertificatePem = Annotated[str, BeforeValidator(_certificate_pem)]
"""A certificate chain as PEM (``BEGIN CERTIFICATE`` blocks only, at most 64 KiB). Never
rendered into nginx configuration: the node writes it to a file."""
