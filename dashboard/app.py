"""The dashboard's entry script (`streamlit run app.py`): navigation, filters, context.

Each rerun reads the store's manifest (is there data, which generation), draws the
global filters in the sidebar, keeps them in the URL, and runs the selected page. An
empty or missing store shows how to load traces instead of a page of blank charts.
"""

from __future__ import annotations

import streamlit as st

from stepscope.dashboard import components, data, warm
from stepscope.dashboard.context import PageContext, resolve_now, set_page_context
from stepscope.dashboard.filters import GlobalFilters, sidebar_filters
from stepscope.dashboard.settings import settings_from_env
from stepscope.timeparse import TimeSpecError, Window

PAGES = {
    "Monitor": [
        st.Page("page_overview.py", title="Overview", icon=":material/space_dashboard:",
                url_path="overview", default=True),
        st.Page("page_cost.py", title="Cost", icon=":material/payments:", url_path="cost"),
        st.Page("page_reliability.py", title="Reliability", icon=":material/monitor_heart:",
                url_path="reliability"),
        st.Page("page_drift.py", title="Drift", icon=":material/trending_up:", url_path="drift"),
        st.Page("page_alerts.py", title="Alerts", icon=":material/notifications_active:",
                url_path="alerts"),
    ],
    "Investigate": [
        st.Page("page_traces.py", title="Trace explorer", icon=":material/account_tree:",
                url_path=components.TRACES_PAGE),
    ],
}


def main() -> None:
    st.set_page_config(page_title="stepscope", page_icon=components.favicon(), layout="wide",
                       initial_sidebar_state="expanded")
    components.inject_css()
    navigation = st.navigation(PAGES)
    settings = settings_from_env()
    state = data.store_state(settings.db)
    now = resolve_now(settings)
    source = data.Source(state.db, state.generation, settings.config_path,
                         data.config_key(settings.config_path))

    st.logo(
        "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='140' height='28'>"
        "<text x='0' y='21' font-family='Inter,Segoe UI,Arial' font-size='20' font-weight='700' "
        "fill='%231e3a8a'>stepscope</text></svg>",
        size="large",
    )
    if state.empty:
        _store_empty_state(state)
        return

    options = _filter_options(source, now)
    filters = sidebar_filters(options, now)
    try:
        window = filters.window(now)
    except TimeSpecError:
        filters = GlobalFilters()
        window = filters.window(now)
    with st.sidebar:
        st.caption(
            f"Data as of {components.fmt_time(now)}"
            + (" (fixed by --now)" if settings.now is not None else "")
            + f" · {state.steps:,} steps in the store"
        )
    set_page_context(PageContext(settings, state, source, filters, now, window))
    navigation.run()
    warm.warm_in_background(settings, state, source, now)


def _filter_options(source: data.Source, now) -> dict[str, list[str]]:
    """Filter choices: what the last 90 days hold, so options do not vanish with the range."""
    from datetime import timedelta

    from stepscope.analytics.filters import Filters

    recent = Window(now - timedelta(days=90), now)
    return data.dimension_values(source, Filters.window(recent))


def _store_empty_state(state: data.StoreState) -> None:
    st.title("stepscope")
    if state.error:
        components.empty_state(
            "This is not a store stepscope can read",
            f"{state.error}. Start the dashboard with <code>--db</code> naming a store directory.",
            icon="⚠️",
        )
        return
    components.empty_state(
        "No traces yet",
        f"The store <code>{state.db}</code> holds no steps. Load OpenTelemetry traces with "
        f"<code>stepscope ingest PATH --db {state.db}</code>, receive them live with "
        "<code>stepscope serve</code>, or explore the bundled sample with "
        "<code>stepscope demo</code>. This page picks up new data on its next refresh.",
    )


main()
