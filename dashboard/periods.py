"""Time on the pages: how a window is named, bucketed and compared."""

from __future__ import annotations

from datetime import datetime, timedelta

from stepscope.dashboard.components import fmt_time
from stepscope.timeparse import Window, format_duration

#: Windows up to this long are charted per hour, longer ones per day, beyond that per week.
HOURLY_UP_TO = timedelta(days=3)
DAILY_UP_TO = timedelta(days=120)


def bucket_for(window: Window) -> str:
    if window.duration <= HOURLY_UP_TO:
        return "hour"
    if window.duration <= DAILY_UP_TO:
        return "day"
    return "week"


def window_label(ctx) -> str:
    """"Last 7 days to 2026-11-16 00:00 UTC", or the explicit window."""
    if ctx.filters.is_relative:
        return f"{ctx.filters.label()} to {fmt_time(ctx.window.end)}"
    return f"{fmt_time(ctx.window.start)} → {fmt_time(ctx.window.end)}"


def comparison_label(window: Window) -> str:
    """What deltas compare with: the window of the same length just before."""
    length = window.duration
    if length == timedelta(days=7):
        return "the week before"
    if length == timedelta(days=1):
        return "the day before"
    return f"the previous {format_duration(length)}"


def window_before(end: datetime, length: timedelta) -> Window:
    """The window of `length` that ends at `end`."""
    return Window(end - length, end)


def short_comparison(window: Window) -> str:
    """The comparison in a few characters, for KPI cards."""
    length = window.duration
    if length == timedelta(days=7):
        return "vs prior week"
    if length == timedelta(days=1):
        return "vs prior day"
    return f"vs prior {format_duration(length)}"
