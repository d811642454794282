"""The state one page run shares with the app shell: store, filters, window, `now`.

`app.py` resolves it once per rerun (sidebar filters, store generation) and stores it
for the page it then runs; pages read it with `page_context()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st

from stepscope.analytics.filters import Filters
from stepscope.config import Config
from stepscope.dashboard.data import Source, StoreState, to_analytics_filters
from stepscope.dashboard.filters import GlobalFilters
from stepscope.dashboard.settings import DashboardSettings
from stepscope.timeparse import Window, to_utc, utc_now

_KEY = "_stepscope_page_context"


@dataclass(frozen=True)
class PageContext:
    settings: DashboardSettings
    store: StoreState
    source: Source
    filters: GlobalFilters
    now: datetime
    window: Window

    @property
    def analytics_filters(self) -> Filters:
        """The analytics filters of the sidebar's selection over the selected window."""
        return to_analytics_filters(self.filters, self.window.start, self.window.end)

    def shifted(self, delta: timedelta) -> Filters:
        """The same filters over the window moved by `delta` (negative: earlier)."""
        window = self.window.shifted(delta)
        return to_analytics_filters(self.filters, window.start, window.end)

    @property
    def config(self) -> Config:
        return self.source.config()


def resolve_now(settings: DashboardSettings) -> datetime:
    """`--now` when given; else the wall clock rounded up to the minute.

    Rounding keeps relative windows (and so cache keys) stable for a minute instead of
    changing on every rerun, at the price of up to a minute of look-ahead.
    """
    fixed = settings.now
    if fixed is not None:
        return to_utc(fixed)
    now = utc_now().replace(second=0, microsecond=0)
    return now + timedelta(minutes=1)


def set_page_context(context: PageContext) -> None:
    st.session_state[_KEY] = context


def page_context() -> PageContext:
    return st.session_state[_KEY]
