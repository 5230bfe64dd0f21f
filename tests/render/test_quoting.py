"""render.quoting: every filter either writes a value nginx reads back unchanged, or refuses.

"Reads back" is checked with tests/render/nginxconf.py, which follows nginx's tokeniser.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt.schema import AccessList
from render import Listen
from render.access import GeoEntry, geo_entries
from render.blocks import Header
from render.quoting import (
    MAX_TOKEN,
    Unrenderable,
    cidr,
    duration,
    header_name,
    ident,
    listen,
    location_path,
    map_key,
    path,
    quote,
    quote_literal,
    server_address,
    server_name,
    size,
    variables,
)
from render.templates import header_value
from tests.render.nginxconf import tokens

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


def read_back(token: str) -> list[tuple[str, str]]:
    """How nginx tokenises ``directive TOKEN;``."""
    return list(tokens(f"directive {token};"))


@given(PRINTABLE)
def test_quote_reads_back_as_the_same_text_with_dollars_neutralised(value: str) -> None:
    out = read_back(quote(value))
    assert out[0] == ("word", "directive")
    assert out[2] == (";", ";")
    assert len(out) == 3  # one argument, nothing more: no ; { } or quote got through
    word = out[1][1]
    assert word.replace("${nxm_dollar}", "$") == value
    # every '$' nginx would expand is the dollar variable, never user text
    assert word.count("$") == word.count("${nxm_dollar}")


@given(PRINTABLE.filter(lambda v: "$" not in v))
def test_quote_literal_reads_back_verbatim(value: str) -> None:
    assert read_back(quote_literal(value))[1] == ("word", value)


@pytest.mark.parametrize(
    "value",
    ["a\nb", "a\rb", "a\tb", "a\x00b", "a\x7fb", "\u0440aypal", "\uff45x", "a\u200bb", "é"],
)
def test_quote_refuses_what_no_nginx_string_can_carry(value: str) -> None:
    with pytest.raises(Unrenderable, match="cannot carry"):
        quote(value)
    with pytest.raises(Unrenderable):
        quote_literal(value)


def test_quote_refuses_non_strings_and_overlong_tokens() -> None:
    with pytest.raises(Unrenderable, match="expected a string"):
        quote(["a"])
    with pytest.raises(Unrenderable, match="longer"):
        quote("$" * (MAX_TOKEN // 10))  # each '$' grows to ${nxm_dollar}
    assert quote("x" * 1000).startswith('"x')


def test_quote_escapes_quotes_and_backslashes() -> None:
    assert quote('say "hi"; \\ {x}') == '"say \\"hi\\"; \\\\ {x}"'
    assert quote("$host") == '"${nxm_dollar}host"'
    with pytest.raises(Unrenderable, match=r"\$"):
        quote_literal("$host")


def test_path_is_absolute_without_dollars_or_globs_and_takes_a_suffix() -> None:
    assert path("/srv/my site") == '"/srv/my site"'
    assert path("/etc/certs", "/${nxm_cert}.crt") == '"/etc/certs/${nxm_cert}.crt"'
    for bad in ("relative/dir", "/a$b", "/a*", "/a?", "/a[1]", "/a\nb"):
        with pytest.raises(Unrenderable):
            path(bad)


def test_location_path_cannot_become_a_modifier() -> None:
    assert location_path("/api/") == '"/api/"'
    for bad in ("~ ^/x", "= /x", "@named", "^~/x", ""):
        with pytest.raises(Unrenderable):
            location_path(bad)


@pytest.mark.parametrize("name", ["example.com", "*.example.com", "example.*", "xn--bcher-kva.ch"])
def test_server_name_accepts_names_and_wildcards(name: str) -> None:
    assert server_name(name) == name


@pytest.mark.parametrize(
    "name", ["~^www", "a b", "a;b", "*.*.com", "ex*ample.com", "", ".example.com", "Example.com"]
)
def test_server_name_refuses_regexes_and_junk(name: str) -> None:
    with pytest.raises(Unrenderable):
        server_name(name)


def test_map_key_escapes_map_keywords() -> None:
    assert map_key("default") == "\\default"
    assert map_key("include") == "\\include"
    assert map_key("hostnames") == "\\hostnames"
    assert map_key("web.default") == "web.default"
    # the tokeniser keeps the backslash; map itself drops it (ngx_http_map_module.c)
    assert read_back(map_key("volatile"))[1] == ("word", "\\volatile")


def test_identifiers_and_header_names_are_bare_words() -> None:
    assert ident("nxm.ws-1.app_2") == "nxm.ws-1.app_2"
    assert header_name("X-Frame-Options") == "X-Frame-Options"
    for bad in ("a b", "a;", "$x", "a{", "", "a/b", "../x"):
        with pytest.raises(Unrenderable):
            ident(bad)
    for bad in ("X_Under", "X Space", "X:Colon", "-lead"):
        with pytest.raises(Unrenderable):
            header_name(bad)


def test_header_values_are_quoted_unless_render_made_them() -> None:
    assert header_value(Header("X", "a;b")) == '"a;b"'
    assert header_value(Header("X", "$host", raw=True)) == "$host"
    assert header_value(Header("Connection", '""', raw=True)) == '""'
    with pytest.raises(Unrenderable):
        header_value(Header("X", "$host; deny all", raw=True))


def test_addresses_ports_and_networks() -> None:
    assert listen(Listen("*", 80)) == "80"
    assert listen(Listen("127.0.0.2", 8080)) == "127.0.0.2:8080"
    assert listen(Listen("::1", 443)) == "[::1]:443"
    assert server_address("2001:db8::1", 80) == "[2001:db8::1]:80"
    assert cidr("10.0.0.0/8") == "10.0.0.0/8"
    assert cidr("all") == "all"
    for bad_listen in (Listen("localhost", 80), Listen("127.0.0.1", 0), Listen("*", 70000)):
        with pytest.raises(Unrenderable):
            listen(bad_listen)
    with pytest.raises(Unrenderable):
        server_address("app.internal", 80)  # names are resolved by the node, never by nginx
    with pytest.raises(Unrenderable):
        cidr("10.0.0.0/8; allow all")


def test_numbers_durations_and_sizes() -> None:
    assert duration(30.0) == "30s"
    assert duration(0.25) == "250ms"
    assert duration(90) == "90s"
    assert duration(1.5) == "1500ms"
    assert size(10 * 1024 * 1024) == "10m"
    assert size(512 * 1024) == "512k"
    assert size(1000) == "1000"
    assert size(0) == "0"
    for bad in (-1.0, float("nan"), float("inf"), True, "30s"):
        with pytest.raises(Unrenderable):
            duration(bad)  # type: ignore[arg-type]
    with pytest.raises(Unrenderable):
        size(-1)


def test_variables_are_only_variables() -> None:
    assert variables("$request_uri") == '"$request_uri"'
    assert variables("$host$uri") == '"$host$uri"'
    for bad in ("$a b", "$a;", "text", "${a}", "$A"):
        with pytest.raises(Unrenderable):
            variables(bad)


networks = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
    ),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
    ),
)
rules = st.lists(
    st.tuples(st.sampled_from(["allow", "deny"]), st.one_of(networks, st.just("all"))),
    max_size=8,
)


def first_match(acl: AccessList, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for rule in acl.rules:
        if rule.source == "all" or ip in ipaddress.ip_network(rule.source):
            return rule.action == "deny"
    return acl.default == "deny"


def longest_prefix(
    default: bool, entries: tuple[GeoEntry, ...], ip: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    best = None
    for entry in entries:
        net = ipaddress.ip_network(entry.network)
        if ip in net and (best is None or net.prefixlen > best[0].prefixlen):
            best = (net, entry.deny)
    return default if best is None else best[1]


@given(
    rules,
    st.sampled_from(["allow", "deny"]),
    st.lists(st.ip_addresses(), min_size=1, max_size=20),
)
def test_geo_form_of_an_access_list_decides_like_first_match(
    drawn: list[tuple[str, str]],
    default: str,
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    acl = AccessList.model_validate(
        {
            "id": "acl",
            "name": "acl",
            "rules": [{"action": a, "source": s} for a, s in drawn],
            "default": default,
        }
    )
    deny_default, entries = geo_entries(acl)
    # also probe the networks' own first addresses, where nested rules meet
    probes = ips + [ipaddress.ip_network(s).network_address for _, s in drawn if s != "all"]
    for ip in probes:
        assert longest_prefix(deny_default, entries, ip) == first_match(acl, ip), ip
