"""Network names and identifiers: ids, host names, server names, ports, IPs, addresses.

Every validator raises ``ValueError`` with a short reason; pydantic attaches the field
path. All strings are ASCII: internationalised domain names must be given as punycode
(``xn--...``), which rejects Unicode look-alikes such as a Cyrillic look-alike of ``paypal.com``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "CIDR",
    "EntityId",
    "EntryPointName",
    "HostName",
    "IPAddress",
    "Port",
    "ServerAddress",
    "ServerName",
    "check_cidr",
    "check_entity_id",
    "check_host_name",
    "check_ip",
    "check_server_address",
    "check_server_name",
    "new_id",
    "whole_int",
]

MAX_HOST_NAME = 253
MAX_LABEL = 63
MAX_ID = 64
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,63})$")
_ENTRY_POINT = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MAX_SAFE_INT = 2**53  # pycrdt numbers are doubles: larger integers are lossy on replicas


def new_id() -> str:
    """A fresh entity id: 16 random bytes as 26 lowercase base32 characters.

    Entities are nested maps keyed by id in a pycrdt document; two writers creating the
    same key concurrently would lose one map entirely, so every new entity gets one.
    """
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def _require_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")  # noqa: TRY004 - pydantic reports ValueError only
    return value


def _check_ascii(value: str, what: str) -> None:
    if not value.isascii():
        raise ValueError(
            f"{what} must be ASCII; give internationalised names as punycode (xn--...)"
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} must not contain spaces or control characters")


def whole_int(value: Any) -> Any:
    """Accept ints and whole floats (pycrdt returns 443 as 443.0); refuse bools and strings."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not a boolean")  # noqa: TRY004 - pydantic reports ValueError only
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("must be a whole number")  # noqa: TRY004 - pydantic reports ValueError
    if abs(value) > _MAX_SAFE_INT:
        raise ValueError("is too large")
    return value


def check_entity_id(value: object) -> str:
    value = _require_str(value)
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_ID:
        raise ValueError(f"must be at most {MAX_ID} characters")
    if not _ID.match(value):
        raise ValueError(
            "must be lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def check_host_name(value: object) -> str:
    """RFC 1123 host name, lowercased. No trailing dot, no wildcard, no IP-like last label."""
    value = _require_str(value)
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_HOST_NAME:
        raise ValueError(f"must be at most {MAX_HOST_NAME} characters")
    _check_ascii(value, "host name")
    value = value.lower()
    labels = value.split(".")
    for label in labels:
        if not label:
            raise ValueError("must not have empty labels (leading, trailing or double dots)")
        if len(label) > MAX_LABEL:
            raise ValueError(f"labels must be at most {MAX_LABEL} characters")
        if not _LABEL.match(label):
            raise ValueError(
                f"label {label!r} must be letters, digits and '-', not starting or ending with '-'"
            )
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                raise ValueError(f"label {label!r} is not valid punycode") from None
    if labels[-1].isdigit():
        raise ValueError("last label must not be all digits (use an IP address field for IPs)")
    return value


def check_server_name(value: object) -> str:
    """A host name, or one wildcard: a leading ``*.`` or a trailing ``.*``."""
    value = _require_str(value)
    if value.startswith("*."):
        rest = value[2:]
        if "*" in rest:
            raise ValueError("only one wildcard is allowed, as '*.' at the start or '.*' at end")
        return "*." + check_host_name(rest)
    if value.endswith(".*"):
        rest = value[:-2]
        if "*" in rest:
            raise ValueError("only one wildcard is allowed, as '*.' at the start or '.*' at end")
        return check_host_name(rest) + ".*"
    if "*" in value:
        raise ValueError("a wildcard may only be '*.' at the start or '.*' at the end")
    return check_host_name(value)


def check_ip(value: object) -> str:
    value = _require_str(value)
    _check_ascii(value, "IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def check_cidr(value: object) -> str:
    """An IP network in CIDR form (a bare address means a single host), normalised."""
    value = _require_str(value)
    _check_ascii(value, "network")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            raise ValueError("has host bits set (e.g. use 10.0.0.0/8, not 10.1.2.3/8)") from None
        raise ValueError("must be an IP network such as 10.0.0.0/8 or 2001:db8::/32") from None


def check_server_address(value: object) -> str:
    """``host:port`` or ``[ipv6]:port``; host is an IP or an RFC 1123 host name."""
    value = _require_str(value)
    _check_ascii(value, "address")
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError("an IPv6 address must be written as [address]:port")
        try:
            addr = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("must be [IPv6 address]:port") from None
        host_out = f"[{addr}]"
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError("must be host:port (e.g. 10.0.0.5:8080 or app.internal:80)")
        if ":" in host:
            raise ValueError("an IPv6 address must be written as [address]:port")
        try:
            host_out = str(ipaddress.IPv4Address(host))
        except ValueError:
            host_out = check_host_name(host)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("port must be a number from 1 to 65535")
    return f"{host_out}:{int(port)}"


def _check_entry_point(value: object) -> str:
    value = _require_str(value)
    if not _ENTRY_POINT.match(value):
        raise ValueError(
            "must be 1-32 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    return value


EntityId = Annotated[str, BeforeValidator(check_entity_id)]
"""A stable entity key; new entities take :func:`new_id`."""
HostName = Annotated[str, BeforeValidator(check_host_name)]
ServerName = Annotated[str, BeforeValidator(check_server_name)]
IPAddress = Annotated[str, BeforeValidator(check_ip)]
CIDR = Annotated[str, BeforeValidator(check_cidr)]
ServerAddress = Annotated[str, BeforeValidator(check_server_address)]
EntryPointName = Annotated[str, BeforeValidator(_check_entry_point)]
"""A logical listener name such as ``http`` or ``https``, mapped to ports by settings."""


def _port_range(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be a port from 1 to 65535")
    return value


Port = Annotated[int, BeforeValidator(whole_int), AfterValidator(_port_range)]
