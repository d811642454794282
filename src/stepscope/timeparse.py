"""Durations, instants and windows as every command spells them.

One parser so that `--since now-7d`, `--window 24h` and `--baseline 2026-11-01..2026-11-08`
mean the same thing in the CLI, the configuration, alert rules and the dashboard URL.
All instants are timezone-aware UTC `datetime`s; windows are half-open `[start, end)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE_RE = re.compile(r"^\s*now\s*(?:([+-])\s*(.+))?$", re.IGNORECASE)


class TimeSpecError(ValueError):
    """A duration, instant or window that cannot be read; the message says what was expected."""


def parse_duration(text: str) -> timedelta:
    """Parse `N(s|m|h|d|w)`, e.g. `90s`, `24h`, `7d`, `2w`."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise TimeSpecError(f"{text!r} is not a duration; expected N followed by s, m, h, d or w")
    amount, unit = match.groups()
    return timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])


def format_duration(delta: timedelta) -> str:
    """The shortest exact `N(s|m|h|d|w)` spelling of a duration."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC by convention; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str | datetime | date, now: datetime | None = None) -> datetime:
    """Parse ISO-8601 (UTC when no offset) or `now`, `now-7d`, `now+1h`."""
    if isinstance(text, datetime):
        return to_utc(text)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=UTC)
    raw = str(text).strip()
    relative = _RELATIVE_RE.match(raw)
    if relative:
        base = to_utc(now) if now is not None else utc_now()
        sign, amount = relative.groups()
        if not sign:
            return base
        delta = parse_duration(amount)
        return base - delta if sign == "-" else base + delta
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeSpecError(
            f"{text!r} is not an instant; expected ISO-8601 (e.g. 2026-11-17T09:00Z) or now-7d"
        ) from None
    return to_utc(parsed)


@dataclass(frozen=True)
class Window:
    """A half-open time window `[start, end)` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise TimeSpecError(f"window end {self.end.isoformat()} is not after its start")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def shifted(self, delta: timedelta) -> Window:
        return Window(self.start + delta, self.end + delta)

    def __str__(self) -> str:
        return f"{iso_utc(self.start)}..{iso_utc(self.end)}"


def parse_window(text: str, now: datetime | None = None) -> Window:
    """Parse `START..END` (either side an instant) or a bare duration meaning `now-D..now`."""
    raw = str(text).strip()
    if ".." in raw:
        start_text, end_text = raw.split("..", 1)
        return Window(parse_instant(start_text, now), parse_instant(end_text or "now", now))
    try:
        length = parse_duration(raw)
    except TimeSpecError:
        raise TimeSpecError(
            f"{text!r} is not a window; expected START..END (e.g. now-7d..now) or a duration"
        ) from None
    end = to_utc(now) if now is not None else utc_now()
    return Window(end - length, end)


def parse_iso_week(text: str) -> Window:
    """Parse `2026-W47` into the UTC Monday-to-Monday window of that ISO week."""
    match = re.match(r"^\s*(\d{4})-W(\d{1,2})\s*$", str(text))
    if not match:
        raise TimeSpecError(f"{text!r} is not an ISO week; expected YYYY-Www, e.g. 2026-W47")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise TimeSpecError(f"{text!r} is not an ISO week: {exc}") from None
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=7))


def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 with a `Z`, the one timestamp spelling of every JSON output."""
    if value is None:
        return None
    value = to_utc(value)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")
