"""The jinja2 environment: templates from ``render/templates/``, quoting filters only.

Autoescaping is off (it escapes for HTML, not nginx); instead every value in a template
goes through a filter from :mod:`render.quoting`, and StrictUndefined turns a misspelt
name into an error rather than an empty string in the output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame

from render.blocks import Header
from render.quoting import FILTERS, Unrenderable, header_name, quote

__all__ = ["environment", "macro", "template"]

_RAW_VALUE = re.compile(r'^(?:\$[a-z][a-z0-9_]*|"")$')
_NEXT_UPSTREAM = frozenset(
    {
        "error",
        "timeout",
        "invalid_header",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
        "http_403",
        "http_404",
        "http_429",
        "non_idempotent",
    }
)


def header_value(header: Header) -> str:
    """A header's value: quoted, or a render/-made variable checked to be just that."""
    if header.raw:
        if not _RAW_VALUE.match(header.value):
            raise Unrenderable(f"raw header value {header.value!r} is not a variable")
        return header.value
    return quote(header.value)


def add_header(header: object) -> str:
    """``NAME VALUE`` for add_header/proxy_set_header."""
    if not (
        isinstance(header, Header)
        and isinstance(header.name, str)
        and isinstance(header.value, str)
    ):
        raise Unrenderable(f"{header!r} is not a header")
    return _add_header(header)


@lru_cache(maxsize=8192)
def _add_header(header: Header) -> str:
    # cached: the same few headers recur in thousands of blocks
    return f"{header_name(header.name)} {header_value(header)}"


def conditions(values: tuple[str, ...]) -> str:
    """``proxy_next_upstream`` conditions, or ``off``."""
    for value in values:
        if value not in _NEXT_UPSTREAM:
            raise Unrenderable(f"{value!r} is not a proxy_next_upstream condition")
    return " ".join(values) if values else "off"


def workers(value: object) -> str:
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024:
        return str(value)
    raise Unrenderable(f"{value!r} is not a number of worker processes")


class _CodeGenerator(CodeGenerator):
    """Compiles ``a.b`` to a plain attribute access.

    jinja2 compiles it to ``environment.getattr(a, "b")`` (attribute, else item, else
    undefined); templates here see only render/'s own tuples and dataclasses, and a
    10,000-vhost render makes some 350,000 such lookups. A missing attribute still fails
    loudly (AttributeError), as StrictUndefined would."""

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        self.write("(")
        self.visit(node.node, frame)
        self.write(f").{node.attr}")


class _Environment(jinja2.Environment):
    code_generator_class = _CodeGenerator


@cache
def environment() -> jinja2.Environment:
    """One environment per process; jinja2 caches compiled templates inside it."""
    env = _Environment(
        loader=jinja2.PackageLoader("render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.clear()  # no built-in filter can bypass quoting by accident
    env.globals.clear()  # nor a global; and smaller contexts render faster
    env.filters.update(FILTERS)
    env.filters.update(header=add_header, conditions=conditions, workers=workers)
    return env


def preload() -> int:
    """Compile every template now (the first edit would otherwise pay for compiling what
    it uses: ~0.1 s of CPU); returns how many."""
    env = environment()
    names = env.list_templates()
    for name in names:
        env.get_template(name)
    return len(names)


def template(name: str) -> jinja2.Template:
    return environment().get_template(name)


def macro(name: str, macro_name: str) -> Callable[..., str]:
    """A macro of a template, called per unit: cheaper than a whole template render
    (no new context), which counts at 10,000 units."""
    return cast(Callable[..., str], getattr(template(name).module, macro_name))
