"""The global filters every page shares, kept in the URL so a view can be pasted anywhere.

The URL is the source of truth for a fresh session (someone opened a pasted link) and
for in-app links that carry filters (`st.page_link(..., query_params=...)`); the
sidebar widgets are the source of truth while someone clicks around. Streamlit clears
the query string when the page changes, so after every run the filters are written
back to it.

Query keys: `range` (a duration such as `7d`, or `START..END`), then `env`, `workflow`,
`version`, `model`, `tenant`, each repeatable (`?workflow=a&workflow=b`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from stepscope.timeparse import (
    TimeSpecError,
    Window,
    iso_utc,
    parse_duration,
    parse_window,
    to_utc,
)

#: (query key, sidebar label, GlobalFilters attribute)
DIMENSIONS: tuple[tuple[str, str, str], ...] = (
    ("env", "Environment", "environments"),
    ("workflow", "Workflow", "workflows"),
    ("version", "Service version", "service_versions"),
    ("model", "Model", "models"),
    ("tenant", "Tenant", "tenants"),
)
FILTER_KEYS = ("range", *(key for key, _, _ in DIMENSIONS))

#: Relative ranges offered in the sidebar; the first is the default.
RANGE_CHOICES: tuple[tuple[str, str], ...] = (
    ("7d", "Last 7 days"),
    ("24h", "Last 24 hours"),
    ("1h", "Last hour"),
    ("3d", "Last 3 days"),
    ("14d", "Last 14 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
)
DEFAULT_RANGE = RANGE_CHOICES[0][0]
CUSTOM_RANGE = "custom"


@dataclass(frozen=True)
class GlobalFilters:
    """What every page is filtered by. Empty tuples mean "all"."""

    range: str = DEFAULT_RANGE
    environments: tuple[str, ...] = ()
    workflows: tuple[str, ...] = ()
    service_versions: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()

    def window(self, now: datetime | None) -> Window:
        """The half-open window the range names; relative ranges end at `now`."""
        return parse_window(self.range, now)

    @property
    def is_relative(self) -> bool:
        return ".." not in self.range

    def label(self) -> str:
        names = dict(RANGE_CHOICES)
        if self.range in names:
            return names[self.range]
        if self.is_relative:
            return f"Last {self.range}"
        return self.range.replace("..", " → ")

    def to_query(self) -> dict[str, str | list[str]]:
        """The query-string form (only non-default entries), for links and the URL."""
        query: dict[str, str | list[str]] = {}
        if self.range != DEFAULT_RANGE:
            query["range"] = self.range
        for key, _, attr in DIMENSIONS:
            values = getattr(self, attr)
            if values:
                query[key] = list(values)
        return query

    def with_values(self, **changes: Any) -> GlobalFilters:
        return replace(self, **changes)

    def active_dimensions(self) -> list[tuple[str, tuple[str, ...]]]:
        """(label, values) of the dimensions that narrow the view, for captions."""
        return [(label, getattr(self, attr)) for _, label, attr in DIMENSIONS if getattr(self, attr)]


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if v is not None]


def normalise_range(text: str | None) -> str:
    """A valid `range` value: durations and `START..END` pass, anything else is the default."""
    if not text:
        return DEFAULT_RANGE
    text = text.strip()
    try:
        if ".." in text:
            window = parse_window(text)
            return f"{iso_utc(window.start)}..{iso_utc(window.end)}"
        parse_duration(text)
        return text
    except TimeSpecError:
        return DEFAULT_RANGE


def filters_from_query(get_all: Callable[[str], list[str]]) -> GlobalFilters:
    """Read filters from a query string accessor such as `st.query_params.get_all`."""
    ranges = get_all("range")
    values = {
        attr: tuple(dict.fromkeys(v for v in get_all(key) if v))
        for key, _, attr in DIMENSIONS
    }
    return GlobalFilters(range=normalise_range(ranges[0] if ranges else None), **values)


def query_has_filters(keys: Sequence[str]) -> bool:
    return any(k in FILTER_KEYS for k in keys)


def custom_range(start: date, end: date) -> str:
    """`START..END` covering whole UTC days from `start` to `end` inclusive."""
    lo = datetime.combine(start, time(0), tzinfo=UTC)
    hi = datetime.combine(end, time(0), tzinfo=UTC) + timedelta(days=1)
    return f"{iso_utc(lo)}..{iso_utc(hi)}"


def range_dates(range_text: str, now: datetime | None) -> tuple[date, date]:
    """The first and last UTC day a range touches, for the custom date picker."""
    window = parse_window(range_text, now)
    end = to_utc(window.end) - timedelta(microseconds=1)
    return to_utc(window.start).date(), end.date()


def merge_query(current: Mapping[str, Sequence[str]], filters: GlobalFilters,
                page_params: Mapping[str, str | list[str]] | None = None) -> dict[str, list[str]]:
    """The new query string: page-specific keys kept, filter keys replaced by `filters`."""
    merged = {k: list(v) for k, v in current.items() if k not in FILTER_KEYS}
    if page_params is not None:
        for key, value in page_params.items():
            merged.pop(key, None)
            if value not in (None, "", []):
                merged[key] = _as_list(value)
    for key, value in filters.to_query().items():
        merged[key] = _as_list(value)
    return merged


# -- the sidebar and the URL (Streamlit) --------------------------------------------------

_STATE_INIT = "_filters_initialised"
_STATE_WRITTEN = "_filters_written"
_RANGE_KEY = "filter_range"
_DATES_KEY = "filter_custom_dates"


def _widget_key(attr: str) -> str:
    return f"filter_{attr}"


def _load_into_widgets(state: Any, filters: GlobalFilters, now: datetime | None) -> None:
    state[_RANGE_KEY] = filters.range if filters.is_relative or not _whole_days(filters.range) \
        else CUSTOM_RANGE
    if not filters.is_relative:
        state[_DATES_KEY] = range_dates(filters.range, now)
        state["_filter_explicit_range"] = filters.range
    for _, _, attr in DIMENSIONS:
        state[_widget_key(attr)] = list(getattr(filters, attr))


def _whole_days(range_text: str) -> bool:
    window = parse_window(range_text)
    return all(t.time() == time(0) for t in (to_utc(window.start), to_utc(window.end)))


def sidebar_filters(options: Mapping[str, Sequence[str]], now: datetime | None) -> GlobalFilters:
    """Draw the filter widgets in the sidebar and return what they select.

    `options` maps each dimension attribute (e.g. "workflows") to the values seen in the
    store, busiest first.
    """
    import streamlit as st

    state = st.session_state
    params = st.query_params
    from_url = filters_from_query(params.get_all) if query_has_filters(list(params.keys())) else None
    if not state.get(_STATE_INIT) or (
        from_url is not None and from_url.to_query() != state.get(_STATE_WRITTEN)
    ):
        _load_into_widgets(state, from_url or GlobalFilters(), now)
        state[_STATE_INIT] = True

    with st.sidebar:
        st.markdown("##### Filters")
        range_options = [value for value, _ in RANGE_CHOICES]
        explicit = state.get("_filter_explicit_range")
        if explicit and not _whole_days(explicit):
            range_options.append(explicit)
        range_options.append(CUSTOM_RANGE)
        if state.get(_RANGE_KEY) not in range_options:
            state[_RANGE_KEY] = DEFAULT_RANGE
        names = dict(RANGE_CHOICES)
        choice = st.selectbox(
            "Time range", range_options, key=_RANGE_KEY,
            format_func=lambda v: "Custom dates…" if v == CUSTOM_RANGE
            else names.get(v, v.replace("..", " → ").replace("T00:00:00Z", "")),
        )
        if choice == CUSTOM_RANGE:
            if _DATES_KEY not in state:
                state[_DATES_KEY] = range_dates(DEFAULT_RANGE, now)
            picked = st.date_input("From – to (UTC days)", key=_DATES_KEY)
            dates = tuple(picked) if isinstance(picked, list | tuple) else (picked,)
            range_text = custom_range(dates[0], dates[-1]) if dates else DEFAULT_RANGE
        else:
            range_text = choice
        values: dict[str, tuple[str, ...]] = {}
        for _, label, attr in DIMENSIONS:
            key = _widget_key(attr)
            chosen = [v for v in state.get(key, []) if v is not None]
            offered = list(dict.fromkeys([*options.get(attr, ()), *chosen]))
            state[key] = chosen
            picked_values = st.multiselect(label, offered, key=key, placeholder="All")
            values[attr] = tuple(picked_values)
        filters = GlobalFilters(range=range_text, **values)
        if filters != GlobalFilters() and st.button("Reset filters", type="tertiary",
                                                    icon=":material/restart_alt:"):
            _load_into_widgets(state, GlobalFilters(), now)
            state[_STATE_WRITTEN] = GlobalFilters().to_query()
            st.query_params.from_dict(merge_query(_query_dict(params), GlobalFilters()))
            st.rerun()

    state[_STATE_WRITTEN] = filters.to_query()
    wanted = merge_query(_query_dict(params), filters)
    if wanted != _query_dict(params):
        params.from_dict(wanted)
    return filters


def _query_dict(params: Any) -> dict[str, list[str]]:
    return {key: list(params.get_all(key)) for key in params}

