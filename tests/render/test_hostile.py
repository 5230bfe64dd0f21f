"""No input injects an nginx directive: hostile values through every string field.

Two layers, each tested on its own:

1. **schema + render**: the value goes through ``model_validate`` as the API would; the
   schema rejects it, or render writes it harmlessly.
2. **render alone**: the value is forced into an already-validated model with
   ``model_copy`` (as a buggy or older peer might), so only render's quoting stands
   between it and nginx: the unit is skipped with a reason, or written harmlessly.

"Harmlessly" is checked on the parsed configuration (tests/render/nginxconf.py reads
tokens as nginx does): every payload carries the marker ``PWNED``, and any token holding
the marker must hold the *whole* payload - a payload split into several tokens (a new
directive, argument, block or variable) fails. Each layer's configurations also pass the
real ``nginx -t``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from crdt.schema import Entity, WorkspaceState
from render import Listen, NodeView, Rendered, render
from tests.render.nginxconf import Directive, parse_tree
from tests.render.scenario import (
    SETTINGS,
    access_list,
    certificate,
    make_view,
    proxy,
    stream,
    upstream,
    vhost,
)
from tests.support.nginx import make_prefix, nginx_test, write_tree

HOSTILE = [
    "x;PWNED",
    "x; PWNED on;",
    "x{PWNED",
    "x}PWNED",
    "} PWNED {",
    "x\nPWNED on;",
    "x\rPWNED",
    "x\r\nX-PWNED: 1",
    'x"PWNED',
    '"; PWNED; #',
    "x'PWNED'",
    "x\\PWNED",
    "PWNED\\",
    "x`PWNED`",
    "$PWNED",
    "${PWNED}",
    "x$PWNED x",
    "$request_uri$PWNED",
    "include /etc/PWNED",
    "include /etc/PWNED;",
    "x #PWNED",
    "#PWNED",
    "PWNED\x00x",
    "x\tPWNED",
    "x\x7fPWNED",
    "\u0440\u0430\u0443\u0440\u0430l.pwned.com",  # Cyrillic look-alike
    "ex\u0430mple.pwned.com",
    "\uff45xample.pwned.com",  # fullwidth
    "a\u200bPWNED",  # zero-width space
    "a\u202ePWNED",  # right-to-left override
    "PWNED" * 500,
    "~^PWNED",
    "@PWNED",
    "= /PWNED",
    "/../PWNED",
    "*.pwned.com",
    "PWNED.*",
    "pwned.test",
    "10.0.0.1:80;PWNED",
    "10.0.0.0/8;PWNED",
    "PWNED",
]


@dataclass(frozen=True)
class Key:
    """A path step that replaces a mapping's key (a header name) rather than its value."""

    name: str


Path_ = tuple[str | int | Key, ...]
FIELDS: list[tuple[str, Path_]] = [
    ("web", ("server_names", 0)),
    ("web", ("entry_points", 0)),
    ("web", ("locations", 0, "path")),
    ("web", ("locations", 0, "upstream")),
    ("web", ("locations", 1, "url")),
    ("web", ("locations", 2, "text")),
    ("web", ("locations", 3, "root")),
    ("web", ("locations", 2, "response_headers", "X-Loc")),
    ("web", ("locations", 2, "response_headers", Key("X-Loc"))),
    ("web", ("request_headers", "X-Env")),
    ("web", ("request_headers", Key("X-Env"))),
    ("web", ("response_headers", "X-Frame-Options")),
    ("web", ("response_headers", Key("X-Frame-Options"))),
    ("web", ("tls", "certificate")),
    ("web", ("access_list",)),
    ("web", ("client_max_body_size",)),
    ("web", ("proxy_read_timeout",)),
    ("web", ("id",)),
    ("app", ("servers", 0, "address")),
    ("app", ("servers", 0, "fail_timeout")),
    ("app", ("id",)),
    ("hashed", ("hash_key",)),
    ("s", ("address",)),
    ("s", ("upstream",)),
    ("cert", ("names", 0)),
    ("cert", ("id",)),
    ("acl", ("rules", 0, "source")),
]


def entities(n: int) -> dict[str, Entity]:
    """A valid workspace touching every field above; ``n`` keeps names and ports apart."""
    return {
        "app": upstream("app", "10.0.0.1:80", "app.internal:80"),
        "hashed": upstream("hashed", "10.0.0.3:80", method="hash", hash_key="$request_uri"),
        "cert": certificate(f"cert{n}", [f"site{n}.test"]),
        "acl": access_list("acl", [("allow", "10.0.0.0/8")]),
        "web": vhost(
            "web",
            [f"site{n}.test"],
            entry_points=["http", "https"],
            tls={"mode": "manual", "certificate": f"cert{n}", "redirect_http": True},
            request_headers={"X-Env": "prod"},
            response_headers={"X-Frame-Options": "DENY"},
            access_list="acl",
            client_max_body_size="1m",
            proxy_read_timeout="30s",
            locations=[
                proxy("/", "app"),
                {
                    "path": "/old",
                    "match": "exact",
                    "action": "return",
                    "status": 301,
                    "url": "/new",
                },
                {"path": "/health", "action": "return", "status": 200, "text": "ok"},
                {"path": "/static/", "action": "static", "root": "/srv/static"},
                proxy("/h/", "hashed"),
            ],
        ),
        "s": stream("s", 30000 + n, "app", address="127.0.0.9"),
    }


def _set_plain(data: Any, path: Path_, value: Any) -> Any:
    """``data`` (JSON-like) with ``value`` at ``path``."""
    step, rest = path[0], path[1:]
    if isinstance(step, Key):
        assert not rest
        out = {k: v for k, v in data.items() if k != step.name}
        out[value] = data.get(step.name, "v")
        return out
    if isinstance(data, list):
        assert isinstance(step, int)
        items = list(data)
        items[step] = _set_plain(items[step], rest, value) if rest else value
        return items
    mapping = dict(data)
    mapping[step] = _set_plain(mapping.get(step), rest, value) if rest else value
    return mapping


def through_schema(entity: Entity, path: Path_, value: str) -> Entity | None:
    data = _set_plain(entity.model_dump(mode="json"), path, value)
    try:
        return type(entity).model_validate(data)
    except ValidationError:
        return None


def forced(obj: Any, path: Path_, value: Any) -> Any:
    """``obj`` with ``value`` at ``path``, no validation anywhere (model_copy)."""
    step, rest = path[0], path[1:]
    if isinstance(step, Key):
        out = {k: v for k, v in obj.items() if k != step.name}
        out[value] = obj.get(step.name, "v")
        return out
    if isinstance(obj, tuple):
        assert isinstance(step, int)
        items = list(obj)
        items[step] = forced(items[step], rest, value) if rest else value
        return tuple(items)
    if isinstance(obj, dict):
        out = dict(obj)
        out[step] = forced(out.get(step), rest, value) if rest else value
        return out
    assert isinstance(obj, BaseModel)
    assert isinstance(step, str)
    current = getattr(obj, step)
    new = forced(current if current is not None else {}, rest, value) if rest else value
    return obj.model_copy(update={step: new})


def view(prefix: Path) -> NodeView:
    return make_view(
        prefix,
        resolved={"app.internal": ("10.0.0.2",)},
        installed_certificates=frozenset(f"cert{n}" for n in range(len(FIELDS) * len(HOSTILE))),
    )


def cases(layer: str) -> Iterator[tuple[int, str, str, Path_, WorkspaceState]]:
    """(case number, payload, entity, path, workspace) for every field and payload that
    survives the layer's first step (the schema, for layer 1)."""
    n = 0
    for key, path in FIELDS:
        for payload in HOSTILE:
            n += 1
            found = entities(n)
            if layer == "schema":
                changed = through_schema(found[key], path, payload)
                if changed is None:
                    continue
            else:
                changed = forced(found[key], path, payload)
            found[key] = changed
            yield n, payload, key, path, _workspace(found, n)


def _workspace(found: dict[str, Entity], n: int) -> WorkspaceState:
    """Entities under their usual keys (a forced ``id`` keeps the original key)."""
    keys = {"app": "app", "hashed": "hashed", "acl": "acl", "web": "web", "s": "s"}
    state = WorkspaceState()
    for name, entity in found.items():
        getattr(state, entity.COLLECTION)[keys.get(name, f"cert{n}")] = entity
    return state


_NEUTRAL = re.compile(re.escape("${nxm_dollar}"))


_DATA_BLOCKS = frozenset({"map", "geo", "types"})


def tokens_of(tree: list[Directive], data: bool = False) -> Iterator[tuple[str, bool]]:
    """(token, is a directive name); entries of map/geo/types blocks are data, not names."""
    for d in tree:
        yield d.name, not data
        for arg in d.args:
            yield arg, False
        if d.block is not None:
            yield from tokens_of(d.block, d.name in _DATA_BLOCKS)


def assert_no_injection(rendered: Rendered, payload: str) -> None:
    tree = parse_tree(rendered.files)  # well formed, and includes only the tree's own files
    whole = payload.lower()
    for token, is_name in tokens_of(tree):
        if "pwned" not in token.lower():
            continue
        assert not is_name, f"{payload!r} became directive {token!r}"
        assert whole in _NEUTRAL.sub("$", token).lower(), f"{payload!r} was split: {token!r}"
        assert "$" not in token.replace("${nxm_dollar}", ""), f"{payload!r} left a live '$'"


def check_layer(layer: str, tmp_path: Path) -> tuple[int, int]:
    """Render every case of ``layer`` on its own and check it; then all together under
    ``nginx -t``. Returns (cases rendered, cases whose unit was skipped)."""
    combined: dict[str, WorkspaceState] = {}
    rendered_units = skipped = 0
    v = view(tmp_path)
    for n, payload, key, path, state in cases(layer):
        ws = f"c{n}"
        one = render(SETTINGS, {ws: state}, v)
        assert_no_injection(one, payload)
        statuses = {k: s for k, s in one.units.items()}
        if any(s.state == "skipped" for s in statuses.values()):
            skipped += 1
        else:
            rendered_units += 1
        for unit, status in statuses.items():
            if status.state == "skipped":
                assert status.reason, (unit, payload, key, path)
        combined[ws] = state
    everything = render(SETTINGS, combined, v)
    make_prefix(tmp_path)
    write_tree(tmp_path, everything.files)
    out = nginx_test(tmp_path)
    assert out.returncode == 0, out.stderr
    return rendered_units, skipped


@pytest.mark.nginx
def test_schema_rejects_or_render_neutralises(tmp_path: Path) -> None:
    accepted, skipped = check_layer("schema", tmp_path)
    assert accepted >= 20  # free text such as "include /etc/PWNED" is kept, as text
    assert skipped == 0  # what the schema accepts always renders


@pytest.mark.nginx
def test_render_alone_skips_or_neutralises(tmp_path: Path) -> None:
    rendered_units, skipped = check_layer("forced", tmp_path)
    assert rendered_units > 100  # many payloads are written, quoted
    assert skipped > 100  # many cannot be, and their units are skipped with a reason


def test_forced_values_that_cannot_be_quoted_skip_the_unit_with_a_reason(tmp_path: Path) -> None:
    found = entities(1)
    found["web"] = forced(found["web"], ("response_headers", "X-Frame-Options"), "a\r\nX-PWNED: 1")
    rendered = render(SETTINGS, {"ws": _workspace(found, 1)}, view(tmp_path))
    status = rendered.units["ws/vhost/web"]
    assert status.state == "skipped"
    assert "cannot be rendered safely" in status.reason
    assert "U+000D" in status.reason
    assert rendered.units["ws/stream/s"].state == "ok"  # the rest still renders


@pytest.mark.parametrize("payload", [p for p in HOSTILE if p.isprintable() and p.isascii()])
def test_a_hostile_node_name_is_quoted(tmp_path: Path, payload: str) -> None:
    rendered = render(SETTINGS, {}, make_view(tmp_path, node=payload[:200]))
    assert_no_injection(rendered, payload[:200])


@pytest.mark.nginx
def test_hostile_node_names_pass_nginx(tmp_path: Path) -> None:
    view_ = make_view(
        tmp_path, node='"; PWNED; # ${x} \\', entry_points={"http": (Listen("127.0.0.2", 8080),)}
    )
    rendered = render(SETTINGS, {}, view_)
    make_prefix(tmp_path)
    write_tree(tmp_path, rendered.files)
    out = nginx_test(tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("key", "path", "value"),
    [
        ("web", ("response_headers", "X-Frame-Options"), 5),
        ("web", ("server_names", 0), ["a.test"]),
        ("web", ("locations", 0, "path"), None),
        ("web", ("client_max_body_size",), "1m"),
        ("app", ("servers", 0, "weight"), "heavy"),
    ],
)
def test_forced_wrong_types_cost_only_their_unit(
    tmp_path: Path, key: str, path: Path_, value: Any
) -> None:
    found = entities(1)
    found[key] = forced(found[key], path, value)
    rendered = render(SETTINGS, {"ws": _workspace(found, 1)}, view(tmp_path))
    web = rendered.units["ws/vhost/web"]
    assert web.state in ("skipped", "degraded"), web
    assert "cannot be rendered safely" in web.reason
    assert_no_injection(rendered, "PWNED")
