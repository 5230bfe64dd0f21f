"""Each reusable type accepts what users expect and rejects the rest with a clear reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from crdt.schema import (
    CIDR,
    Duration,
    FilePath,
    HashKey,
    HeaderName,
    HeaderValue,
    HostName,
    IPAddress,
    Name,
    PathPrefix,
    Port,
    RedirectUrl,
    ServerAddress,
    ServerName,
    Size,
    Text,
    field_errors,
    new_id,
)
from crdt.schema.names import EntityId


def ok(tp: Any, value: Any) -> Any:
    return TypeAdapter(tp).validate_python(value)


def reason(tp: Any, value: Any) -> str:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(tp).validate_python(value)
    errors = field_errors(info.value)
    assert len(errors) == 1, errors
    return errors[0]["reason"]


def test_new_id_is_unique_and_a_valid_id() -> None:
    made = {new_id() for _ in range(1000)}
    assert len(made) == 1000
    for ident in list(made)[:20]:
        assert len(ident) == 26
        assert ok(EntityId, ident) == ident


@pytest.mark.parametrize("value", ["", "Web", "a b", "x" * 65, "-x", "a.b", "é"])
def test_entity_id_rejects(value: str) -> None:
    assert reason(EntityId, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("localhost", "localhost"),
        ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
        ("a-b.c0.io", "a-b.c0.io"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_host_name_accepts(value: str, expected: str) -> None:
    assert ok(HostName, value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("\u0440\u0430\u0443\u0440\u0430l.com", "punycode"),  # Cyrillic look-alike
        ("exa mple.com", "spaces"),
        ("-a.com", "'-'"),
        ("a-.com", "'-'"),
        ("a..com", "empty labels"),
        ("example.com.", "empty labels"),
        ("a" * 64 + ".com", "63"),
        ("a." * 127 + "com", "253"),
        ("under_score.com", "letters, digits"),
        ("10.0.0.1", "all digits"),
        ("*.example.com", "letters, digits"),
        ("xn--zz.com", "punycode"),
    ],
)
def test_host_name_rejects(value: str, why: str) -> None:
    assert why in reason(HostName, value)


@pytest.mark.parametrize(
    "value", ["example.com", "*.example.com", "example.*", "www.example.*", "*.A.B"]
)
def test_server_name_accepts_leading_or_trailing_wildcards(value: str) -> None:
    assert ok(ServerName, value) == value.lower()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("*", "wildcard"),
        ("w*.example.com", "wildcard"),
        ("www.*.com", "wildcard"),
        ("*.example.*", "one wildcard"),
        ("*.*.example.com", "one wildcard"),
        (".example.com", "empty labels"),
        ("~^www", "letters, digits"),
    ],
)
def test_server_name_rejects(value: str, why: str) -> None:
    assert why in reason(ServerName, value)


def test_port_bounds_and_whole_floats() -> None:
    assert ok(Port, 1) == 1
    assert ok(Port, 65535) == 65535
    assert ok(Port, 443.0) == 443
    assert "1 to 65535" in reason(Port, 0)
    assert "1 to 65535" in reason(Port, 65536)
    assert "whole number" in reason(Port, 443.5)
    assert "whole number" in reason(Port, "443")
    assert "boolean" in reason(Port, True)


def test_ip_and_cidr() -> None:
    assert ok(IPAddress, "2001:DB8::0001") == "2001:db8::1"
    assert "IPv4 or IPv6" in reason(IPAddress, "10.0.0.256")
    assert ok(CIDR, "10.0.0.0/8") == "10.0.0.0/8"
    assert ok(CIDR, "192.0.2.7") == "192.0.2.7/32"
    assert "host bits" in reason(CIDR, "10.1.2.3/8")
    assert "IP network" in reason(CIDR, "10.0.0.0/33")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("App.Internal:8080", "app.internal:8080"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("localhost:0080", "localhost:80"),
    ],
)
def test_server_address_accepts(value: str, expected: str) -> None:
    assert ok(ServerAddress, value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("10.0.0.1", "host:port"),
        (":80", "host:port"),
        ("10.0.0.1:0", "1 to 65535"),
        ("10.0.0.1:99999", "1 to 65535"),
        ("2001:db8::1:80", "[address]:port"),
        ("[2001:db8::1]", "[address]:port"),
        ("[zz::1]:80", "IPv6"),
        ("a;b:80", "letters, digits"),
        ("unix:/tmp/s", "1 to 65535"),
    ],
)
def test_server_address_rejects(value: str, why: str) -> None:
    assert why in reason(ServerAddress, value)


@pytest.mark.parametrize("value", ["/", "/api/v1/", "/a-b_c.d~e", "/%20x", "/@user:1"])
def test_path_prefix_accepts(value: str) -> None:
    assert ok(PathPrefix, value) == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("api", "start with '/'"),
        ("/a b", "spaces"),
        ("/a/../etc", "'..'"),
        ("/..", "'..'"),
        ("/%zz", "two hex digits"),
        ("/a?b", "'?'"),
        ("/a#b", "'#'"),
        ("/a;b", "';'"),
        ("/" + "a" * 1024, "at most 1024"),
    ],
)
def test_path_prefix_rejects(value: str, why: str) -> None:
    assert why in reason(PathPrefix, value)


def test_header_name_and_value() -> None:
    assert ok(HeaderName, "X-Request-Id") == "X-Request-Id"
    assert "RFC 7230 token" in reason(HeaderName, "X_Under")
    assert "RFC 7230 token" in reason(HeaderName, "X:Y")
    assert "at most 64" in reason(HeaderName, "X" * 65)
    assert ok(HeaderValue, "max-age=3600, public") == "max-age=3600, public"
    assert "'$'" in reason(HeaderValue, "$host")
    assert "control" in reason(HeaderValue, "a\r\nSet-Cookie: x")
    assert "ASCII" in reason(HeaderValue, "caf\u00e9")
    assert "start or end" in reason(HeaderValue, " x")
    assert "empty" in reason(HeaderValue, "")


def test_sizes() -> None:
    assert ok(Size, "512k") == 512 * 1024
    assert ok(Size, "10M") == 10 * 1024**2
    assert ok(Size, "1g") == 1024**3
    assert ok(Size, 1000) == 1000
    assert ok(Size, 1000.0) == 1000
    assert ok(Size, "0") == 0
    assert "size such as" in reason(Size, "10 m")
    assert "size such as" in reason(Size, "10mb")
    assert "1024g" in reason(Size, "2000g")
    assert "whole number" in reason(Size, 1.5)


def test_durations() -> None:
    assert ok(Duration, "250ms") == 0.25
    assert ok(Duration, "30s") == 30.0
    assert ok(Duration, "5m") == 300.0
    assert ok(Duration, "1h") == 3600.0
    assert ok(Duration, "1m30s") == 90.0
    assert ok(Duration, 1.5) == 1.5
    assert ok(Duration, 30) == 30.0
    assert "duration such as" in reason(Duration, "30")
    assert "duration such as" in reason(Duration, "30 s")
    assert "duration such as" in reason(Duration, "5w")
    assert "milliseconds" in reason(Duration, 0.0001)
    assert "finite" in reason(Duration, float("inf"))
    assert "730d" in reason(Duration, "800d")
    assert "boolean" in reason(Duration, True)


def test_display_names_allow_any_script_but_no_controls() -> None:
    assert ok(Name, "Zweigstelle Zürich") == "Zweigstelle Zürich"
    assert "empty" in reason(Name, "")
    assert "at most 64" in reason(Name, "x" * 65)
    assert "control" in reason(Name, "a\nb")
    assert "control" in reason(Name, "a\u202eb")  # right-to-left override
    assert "whitespace" in reason(Name, " a")
    assert ok(Text, "") == ""
    assert "control" in reason(Text, "line\nbreak")


def test_redirect_url_file_path_and_hash_key() -> None:
    assert ok(RedirectUrl, "https://example.com/new?x=1") == "https://example.com/new?x=1"
    assert ok(RedirectUrl, "/new") == "/new"
    assert "absolute" in reason(RedirectUrl, "javascript:alert(1)")
    assert "'$'" in reason(RedirectUrl, "https://x/$request_uri")
    assert "host" in reason(RedirectUrl, "https:///x")
    assert ok(FilePath, "/srv/www") == "/srv/www"
    assert "absolute" in reason(FilePath, "srv")
    assert "'..'" in reason(FilePath, "/srv/../etc")
    assert ok(HashKey, "$request_uri") == "$request_uri"
    assert ok(HashKey, "$host$uri") == "$host$uri"
    assert ok(HashKey, "$cookie_session") == "$cookie_session"
    assert "not an allowed" in reason(HashKey, "$document_root")
    assert "nginx variables" in reason(HashKey, "$uri;")
    assert "nginx variables" in reason(HashKey, "request_uri")
