"""A reader for nginx configuration that follows nginx's own tokeniser.

It mirrors ``ngx_conf_read_token`` (src/core/ngx_conf_file.c, nginx 1.22): words split on
whitespace, ``;`` and ``{`` end a word, ``}`` only counts at the start of a token, ``#``
starts a comment only at the start of a token, quotes open only at the start of a token
and must be followed by a separator, ``\\`` escapes the next character, and ``${``
continues a word. Escapes ``\\" \\' \\\\ \\t \\r \\n`` are undone as nginx undoes them.

Tests use it to see the configuration as nginx will: which directives exist, with which
arguments - so an injected directive shows up as a structural difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["ConfError", "Directive", "parse", "parse_tree", "skeleton", "tokens", "walk"]

_SPACE = " \t\r\n"


class ConfError(ValueError):
    """nginx would refuse this text at the tokeniser."""


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    file: str = ""
    children: list[Directive] = field(default_factory=list, repr=False)


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, value): kind is ``word``, ``;``, ``{`` or ``}``."""
    i = 0
    n = len(text)
    words_in_directive = 0
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c in ";{":
            if words_in_directive == 0:
                raise ConfError(f"unexpected {c!r} at {i}")
            words_in_directive = 0
            yield c, c
            i += 1
            continue
        if c == "}":
            if words_in_directive:
                raise ConfError(f"unexpected '}}' at {i}")
            yield "}", "}"
            i += 1
            continue
        if c in "\"'":
            quote = c
            j = i + 1
            while True:
                if j >= n:
                    raise ConfError("unterminated quoted string")
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == quote:
                    break
                j += 1
            word = _unescape(text[i + 1 : j])
            j += 1
            if j < n and text[j] not in _SPACE + ";{)":
                raise ConfError(f"unexpected {text[j]!r} after a quoted string at {j}")
            words_in_directive += 1
            yield "word", word
            i = j
            continue
        # an unquoted word: ends at whitespace, ';' or '{' (but '${' continues it)
        j = i
        while j < n:
            ch = text[j]
            if ch == "\\":
                j += 2
                continue
            if ch == "$" and j + 1 < n and text[j + 1] == "{":
                j += 2
                continue
            if ch in _SPACE or ch in ";{":
                break
            j += 1
        words_in_directive += 1
        yield "word", _unescape(text[i:j])
        i = j


def parse(text: str, file: str = "") -> list[Directive]:
    """The directives of one file (includes not followed)."""
    root: list[Directive] = []
    stack: list[list[Directive]] = [root]
    words: list[str] = []
    for kind, value in tokens(text):
        if kind == "word":
            words.append(value)
        elif kind == ";":
            stack[-1].append(Directive(words[0], words[1:], None, file))
            words = []
        elif kind == "{":
            block: list[Directive] = []
            stack[-1].append(Directive(words[0], words[1:], block, file))
            stack.append(block)
            words = []
        else:
            if len(stack) == 1:
                raise ConfError("unexpected '}'")
            stack.pop()
    if words or len(stack) != 1:
        raise ConfError("unexpected end of file")
    return root


def parse_tree(files: Mapping[str, bytes], entry: str = "nginx.conf") -> list[Directive]:
    """The whole configuration with ``include`` replaced by the included file."""

    def expand(directives: list[Directive]) -> list[Directive]:
        out: list[Directive] = []
        for d in directives:
            if d.name == "include" and d.block is None:
                target = d.args[0]
                if target not in files:
                    raise ConfError(f"include of a file not in the tree: {target!r}")
                out.extend(expand(parse(files[target].decode(), target)))
            elif d.block is not None:
                out.append(Directive(d.name, d.args, expand(d.block), d.file))
            else:
                out.append(d)
        return out

    return expand(parse(files[entry].decode(), entry))


def walk(directives: list[Directive], depth: int = 0) -> Iterator[tuple[int, Directive]]:
    for d in directives:
        yield depth, d
        if d.block is not None:
            yield from walk(d.block, depth + 1)


def skeleton(directives: list[Directive]) -> list[tuple[int, str, int, bool]]:
    """(depth, name, number of arguments, opens a block) for every directive, in order:
    what must not change when only a value changes."""
    return [(depth, d.name, len(d.args), d.block is not None) for depth, d in walk(directives)]
