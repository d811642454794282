"""Warming the caches: every page's default view computed before anyone opens it.

After the first page run on a new store generation, a background thread calls each
page's `load(ctx)` for the default filters. The results land in the same `st.cache_data`
entries the pages read, so moving from the Overview to Cost, Reliability, Drift or the
Trace explorer is answered from memory instead of waiting for queries on a large store.
It runs after the page the person asked for, and its queries queue behind theirs on the
one analytics connection, so it never delays what is on screen.

The thread is not a daemon: a daemon thread killed inside a DuckDB query at interpreter
exit aborts the process. Instead, exit sets `STOP` and the thread ends after the query
it is running.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from stepscope.dashboard.context import PageContext
from stepscope.dashboard.data import Source, StoreState
from stepscope.dashboard.filters import GlobalFilters
from stepscope.dashboard.settings import DashboardSettings

_LOG = logging.getLogger(__name__)
#: On a live store the generation (new data) and `now` (the minute) keep changing: warm
#: at most this often per store, so warming never becomes a standing load.
MIN_INTERVAL_S = 300.0
_STARTED: set[tuple[Source, datetime]] = set()
_LAST_START: dict[str, float] = {}
_GUARD = threading.Lock()
STOP = threading.Event()
# Called before the interpreter joins non-daemon threads (as concurrent.futures does).
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(STOP.set)


def default_context(settings: DashboardSettings, store: StoreState, source: Source,
                    now: datetime) -> PageContext:
    filters = GlobalFilters()
    return PageContext(settings, store, source, filters, now, filters.window(now))


def warm_default_views(context: PageContext) -> None:
    """Run every page's queries for the default view (each page's `load`)."""
    from stepscope.dashboard import (
        page_cost,
        page_drift,
        page_overview,
        page_reliability,
        page_traces,
    )

    for page in (page_overview, page_cost, page_reliability, page_traces, page_drift):
        if STOP.is_set():
            return
        try:
            page.load(context).compute_all(STOP)
        except Exception:  # a failing page must show its own error, not break the others
            _LOG.exception("warming %s failed", page.__name__)


def warm_in_background(settings: DashboardSettings, store: StoreState, source: Source,
                       now: datetime) -> bool:
    """Start warming once per store generation, configuration and `now`, and at most every
    MIN_INTERVAL_S per store; True if started."""
    key = (source, now)
    with _GUARD:
        last = _LAST_START.get(source.db)
        if key in _STARTED or (last is not None and time.monotonic() - last < MIN_INTERVAL_S):
            return False
        _STARTED.add(key)
        _LAST_START[source.db] = time.monotonic()
    thread = threading.Thread(
        target=warm_default_views, args=(default_context(settings, store, source, now),),
        name="stepscope-warm", daemon=False,
    )
    try:
        from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

        add_script_run_ctx(thread, get_script_run_ctx())
    except ImportError:
        pass
    thread.start()
    return True
