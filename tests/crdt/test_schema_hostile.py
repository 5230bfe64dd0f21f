"""A corpus of hostile inputs is rejected by every string field that reaches nginx config.

Free-text fields rendered inside quotes (header values, return bodies) may keep plain
words with spaces - ``include /etc/passwd`` there is text, not a directive - but never a
character that could end a quoted string, a directive or a block, or expand a variable.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from crdt.schema import (
    AccessList,
    Certificate,
    Entity,
    MeshSettings,
    StreamProxy,
    Upstream,
    VirtualHost,
    field_errors,
)
from tests.crdt.strategies import (
    access_list_dict,
    certificate_dict,
    stream_dict,
    upstream_dict,
    vhost_dict,
)

HOSTILE = [
    "a;b",
    "a; return 200 x",
    "a{b",
    "a}b",
    "}",
    "a\nb",
    "a\rb",
    "a\r\nX-Injected: 1",
    'a"b',
    "a'b",
    "a\\b",
    "a`b`",
    "$host",
    "${host}",
    "a$b",
    "include /etc/passwd",
    "\u0440\u0430\u0443\u0440\u0430l.com",  # Cyrillic look-alike of paypal.com
    "ex\u0430mple.com",  # one Cyrillic a
    "\uff45xample.com",  # fullwidth e
    "a\u200bb",  # zero-width space
    "a\u202eb",  # right-to-left override
    "a\x00b",
    "a\tb",
    "a\x7fb",
    "x" * 5000,
    "",
]
# kept as text inside quotes; no special character, so nothing to inject
TEXT: frozenset[str] = frozenset({"include /etc/passwd"})
# the hash key is made of allow-listed variables, and $host is one of them
HASH: frozenset[str] = frozenset({"$host"})
NONE: frozenset[str] = frozenset()

# (model, base data, path to the field, hostile values that are harmless there)
Path = tuple[str | int, ...]
FIELDS: list[tuple[type[Entity], dict[str, Any], Path, frozenset[str]]] = [
    (VirtualHost, vhost_dict(), ("server_names", 0), NONE),
    (VirtualHost, vhost_dict(), ("entry_points", 0), NONE),
    (VirtualHost, vhost_dict(), ("locations", 0, "path"), NONE),
    (VirtualHost, vhost_dict(), ("locations", 0, "upstream"), NONE),
    (VirtualHost, vhost_dict(), ("locations", 1, "url"), NONE),
    (VirtualHost, vhost_dict(), ("locations", 2, "text"), TEXT),
    (VirtualHost, vhost_dict(), ("locations", 3, "root"), NONE),
    (VirtualHost, vhost_dict(), ("request_headers", "X-Forwarded-Proto"), TEXT),
    (VirtualHost, vhost_dict(), ("response_headers", "X-Frame-Options"), TEXT),
    (VirtualHost, vhost_dict(), ("tls", "certificate"), NONE),
    (VirtualHost, vhost_dict(), ("access_list",), NONE),
    (VirtualHost, vhost_dict(), ("client_max_body_size",), NONE),
    (VirtualHost, vhost_dict(), ("proxy_read_timeout",), NONE),
    (VirtualHost, vhost_dict(), ("id",), NONE),
    (Upstream, upstream_dict(), ("servers", 0, "address"), NONE),
    (Upstream, upstream_dict(), ("servers", 0, "fail_timeout"), NONE),
    (
        Upstream,
        upstream_dict(method="hash", hash_key="$uri", servers=[{"address": "a.b:1"}]),
        ("hash_key",),
        HASH,
    ),
    (StreamProxy, stream_dict(), ("address",), NONE),
    (StreamProxy, stream_dict(), ("upstream",), NONE),
    (Certificate, certificate_dict(), ("names", 0), NONE),
    (Certificate, certificate_dict(), ("key_ref",), NONE),
    (AccessList, access_list_dict(), ("rules", 0, "source"), NONE),
    (
        MeshSettings,
        {"entry_points": {"http": {"port": 80}}},
        ("entry_points", "http", "address"),
        NONE,
    ),
]


def _set(data: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target: Any = data
    for seg in path[:-1]:
        target = target[seg]
    target[path[-1]] = value
    return data


def _expected_field(path: Path) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out


def _variants(hostile: str) -> list[str]:
    if not hostile:
        return [""]
    return [hostile, "/" + hostile, "ok" + hostile, hostile + ".example.com", hostile + ":80"]


@pytest.mark.parametrize(
    ("model", "base", "path", "harmless"),
    FIELDS,
    ids=[f"{m.__name__}:{_expected_field(p)}" for m, _, p, _ in FIELDS],
)
def test_hostile_values_are_rejected_with_the_field_named(
    model: type[Entity], base: dict[str, Any], path: Path, harmless: frozenset[str]
) -> None:
    model.model_validate(base)  # the base is valid
    for hostile in HOSTILE:
        if hostile in harmless:
            model.model_validate(_set(base, path, hostile))
            continue
        for value in _variants(hostile):
            with pytest.raises(ValidationError) as info:
                model.model_validate(_set(base, path, value))
            fields = [e["field"] for e in field_errors(info.value)]
            assert _expected_field(path) in fields, (value, fields)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_header_names_are_rejected(hostile: str) -> None:
    data = vhost_dict(response_headers={hostile: "x"})
    with pytest.raises(ValidationError) as info:
        VirtualHost.model_validate(data)
    assert all(e["field"].startswith("response_headers") for e in field_errors(info.value))


def test_accepted_values_contain_no_nginx_special_characters() -> None:
    """Whatever validates, every string in the dump is printable ASCII without specials."""
    for model, base, _, _ in FIELDS:
        dumped = model.model_validate(base).model_dump(mode="json", exclude={"name", "hash_key"})
        for text in _strings(dumped):
            assert text.isascii(), text
            assert text.isprintable(), text
            assert not set(text) & set("$;{}\"'\\`"), text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
