"""Times and durations as the console prints them."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["ago", "clock_time", "expiry", "parse_instant", "relative_days"]


def clock_time(at: float, tz: tzinfo | None) -> str:
    """``HH:MM:SS`` of a Unix time in ``tz`` (None: the local zone)."""
    return datetime.fromtimestamp(at, tz).strftime("%H:%M:%S")


def ago(seconds: float) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 days ago`` (``just now`` under 1 s)."""
    if seconds < 1:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''} ago"
    return f"{int(seconds)} s ago"


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 date-time from the API (``2026-12-01T00:00:00Z``); None if absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def relative_days(when: datetime, now: float) -> float:
    """Days from ``now`` (Unix time) to ``when``; negative in the past."""
    return (when.timestamp() - now) / 86400


EXPIRING_DAYS = 21
"""A certificate with fewer days left is shown as expiring (ACME renews at 30)."""


def expiry(not_before: object, not_after: object, now: float) -> tuple[str, str]:
    """(``in 12 days`` / ``expired 3 days ago`` / ``-``, status) of a certificate; status is
    ``valid``, ``expiring``, ``expired``, ``not yet valid`` or ``pending`` (no dates: not
    issued or uploaded yet)."""
    end = parse_instant(not_after)
    if end is None:
        return "-", "pending"
    days = relative_days(end, now)
    start = parse_instant(not_before)
    if days < 0:
        return f"expired {_days(-days)} ago", "expired"
    text = f"in {_days(days)}"
    if start is not None and relative_days(start, now) > 0:
        return text, "not yet valid"
    return text, "expiring" if days < EXPIRING_DAYS else "valid"


def _days(days: float) -> str:
    if days < 1:
        hours = int(days * 24)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''}"
