"""nginx's messages: parsing its error-log and stderr lines, and tailing the error log.

nginx writes two shapes: ``2024/01/02 03:04:05 [emerg] 123#123: text`` (a log file, or
stderr under ``-e stderr``) and ``nginx: [emerg] text`` (stderr next to a log file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SEVERE", "LogLine", "LogTail", "parse_line", "summarize"]

SEVERE = frozenset({"emerg", "alert"})
"""Levels that fail a reload's verification."""
ERRORS = frozenset({"emerg", "alert", "crit", "error"})

_LINE = re.compile(
    r"^(?:nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )"
    r"\[(?P<level>[a-z]+)\] (?:(?P<pid>\d+)#\d+: )?(?:\*\d+ )?(?P<text>.*)$"
)
_MAX_READ = 1 << 20  # a verification never needs more than the last MiB


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    pid: int | None
    text: str


def parse_line(line: str) -> LogLine | None:
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    pid = match.group("pid")
    return LogLine(match.group("level"), int(pid) if pid else None, match.group("text"))


def summarize(
    text_or_lines: str | Iterable[LogLine],
    *,
    levels: frozenset[str] = ERRORS,
    strip: str = "",
    limit: int = 5,
) -> str:
    """nginx's distinct messages at ``levels``, in order, one per line.

    ``strip`` (a staged directory) is removed from paths so that messages name files as
    the renderer does (``units/a.conf:3``), whatever directory was tested.
    """
    lines = (
        [p for p in map(parse_line, text_or_lines.splitlines()) if p is not None]
        if isinstance(text_or_lines, str)
        else list(text_or_lines)
    )
    seen: list[str] = []
    for line in lines:
        if line.level not in levels:
            continue
        text = line.text.replace(strip.rstrip("/") + "/", "") if strip else line.text
        if text not in seen:
            seen.append(text)
    return "\n".join(seen[:limit])


class LogTail:
    """Lines appended to a log file after this object was made (truncation restarts it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = self._size()
        self._partial = b""

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def read(self) -> list[LogLine]:
        """Complete new lines that parse as nginx messages."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self._offset:  # rotated or truncated
                self._offset, self._partial = 0, b""
            start = max(self._offset, size - _MAX_READ)
            data = os.pread(fd, size - start, start)
        finally:
            os.close(fd)
        self._offset = start + len(data)
        data, self._partial = self._partial + data, b""
        complete, _, rest = data.rpartition(b"\n")
        self._partial = rest
        out = []
        for raw in complete.split(b"\n") if complete else []:
            parsed = parse_line(raw.decode(errors="replace"))
            if parsed is not None:
                out.append(parsed)
        return out
