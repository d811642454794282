"""Cached calls into `stepscope.analytics`: the only way pages get numbers.

* One read connection per store, shared by every session (`st.cache_resource`): the
  analytics keep their per-run tables on it, so they are built once per store
  generation rather than once per page view. DuckDB connections are not safe for
  concurrent use, so calls on it are serialised by a lock.
* Results are cached (`st.cache_data`) under the function, its arguments, the store's
  manifest generation and the configuration file's identity: new data or a new price
  table shows up on the next rerun, and anything else is answered from memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import streamlit as st

from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.dashboard_queries import drift_distribution
from stepscope.analytics.drift import drift_findings
from stepscope.analytics.explore import (
    cost_breakdown,
    find_traces,
    release_markers,
    top_cost_traces,
    trace_steps,
)
from stepscope.analytics.filters import Filters
from stepscope.analytics.kpis import kpi_series, kpis, step_kpis
from stepscope.clickhouse.location import is_clickhouse_url
from stepscope.config import Config, load_config
from stepscope.store import ReadConnection, Store, StoreError
from stepscope.stores import open_store
from stepscope.timeparse import to_utc

if TYPE_CHECKING:
    from stepscope.clickhouse.store import ClickHouseStore

CACHE_TTL_S = 6 * 3600
CACHE_ENTRIES = 512

_QUERY_LOCK = threading.Lock()


@dataclass(frozen=True)
class StoreState:
    """What the store holds right now, read fresh on every rerun (one small file)."""

    db: str
    exists: bool
    generation: int
    steps: int
    error: str | None = None

    @property
    def empty(self) -> bool:
        return not self.exists or self.steps == 0


def store_state(db: str) -> StoreState:
    if is_clickhouse_url(db):
        try:
            store = _clickhouse_store(db)
            return StoreState(db, True, store.generation(), store.row_count())
        except StoreError as exc:
            return StoreState(db, False, -1, 0, str(exc))
    store = Store(db)
    if not store.exists:
        if store.path.exists() and any(store.path.iterdir()):
            return StoreState(db, False, -1, 0, f"{store.path} is not a stepscope store")
        return StoreState(db, False, -1, 0)
    try:
        manifest = store.manifest()
    except StoreError as exc:
        return StoreState(db, True, -1, 0, str(exc))
    steps = sum(int(s.get("rows", 0)) for s in manifest.get("segments", []))
    return StoreState(db, True, int(manifest.get("generation", 0)), steps)


def config_key(config_path: str | None) -> tuple[str | None, float | None]:
    """Identifies the configuration's content for caching: its path and modification time."""
    path = Path(config_path) if config_path else Path("stepscope.toml")
    try:
        return str(path.resolve()), path.stat().st_mtime
    except OSError:
        return (str(path) if config_path else None), None


@st.cache_resource(show_spinner=False, max_entries=8)
def load_dashboard_config(key: tuple[str | None, float | None], explicit: bool) -> Config:
    path, _ = key
    return load_config(path if explicit else None)


@st.cache_resource(show_spinner=False, max_entries=4)
def _connection(db: str) -> ReadConnection:
    return open_store(db).connect()


@st.cache_resource(show_spinner=False, max_entries=4)
def _clickhouse_store(db: str) -> ClickHouseStore:
    """One ClickHouse store (and session) per URL for the state checks of every rerun."""
    return open_store(db)


@dataclass(frozen=True)
class Source:
    """Everything a cached result depends on besides the call itself."""

    db: str
    generation: int
    config_path: str | None
    config_id: tuple[str | None, float | None]

    def config(self) -> Config:
        return load_dashboard_config(self.config_id, self.config_path is not None)


# Each entry: name -> (function, whether it takes `config=`). Names are the cache keys.
_FUNCTIONS: dict[str, tuple[Callable[..., pl.DataFrame], bool]] = {
    "kpis": (kpis, True),
    "kpi_series": (kpi_series, True),
    "step_kpis": (step_kpis, True),
    "failure_clusters": (failure_clusters, True),
    "drift_findings": (drift_findings, True),
    "cost_breakdown": (cost_breakdown, True),
    "find_traces": (find_traces, True),
    "top_cost_traces": (top_cost_traces, True),
    "trace_steps": (trace_steps, True),
    "release_markers": (release_markers, True),
    "drift_distribution": (drift_distribution, True),
}


@st.cache_data(show_spinner=False, ttl=CACHE_TTL_S, max_entries=CACHE_ENTRIES)
def _cached_call(source: Source, name: str, args: tuple, kwargs: tuple[tuple[str, Any], ...]
                 ) -> pl.DataFrame:
    function, takes_config = _FUNCTIONS[name]
    options = dict(kwargs)
    if takes_config:
        options["config"] = source.config()
    con = _connection(source.db)
    with _QUERY_LOCK:
        return function(con, *args, **options)


def call(source: Source, name: str, *args: Any, **kwargs: Any) -> pl.DataFrame:
    """`analytics.<name>(con, *args, **kwargs)`, cached for this store generation."""
    return _cached_call(source, name, tuple(args), tuple(sorted(kwargs.items())))


# -- the queries pages use ---------------------------------------------------------------


def dimension_values(source: Source, window_filters: Filters) -> dict[str, list[str]]:
    """Values of each global filter dimension seen in the window, busiest first."""
    out: dict[str, list[str]] = {}
    for attr, key in (("environments", "environment"), ("workflows", "workflow"),
                      ("service_versions", "service_version"), ("models", "model"),
                      ("tenants", "tenant")):
        frame = call(source, "kpis", window_filters, by=(key,))
        if frame.is_empty():
            out[attr] = []
            continue
        frame = frame.filter(pl.col(key).is_not_null()).sort("runs", descending=True)
        out[attr] = [str(v) for v in frame[key].to_list()]
    return out


def to_analytics_filters(global_filters: Any, since: datetime, until: datetime) -> Filters:
    """The analytics `Filters` for the sidebar's selection and a resolved window."""
    return Filters(
        since=since, until=until,
        workflows=global_filters.workflows,
        environments=global_filters.environments,
        service_versions=global_filters.service_versions,
        models=global_filters.models,
        tenants=global_filters.tenants,
    )



def release_marker_lines(source: Source, filters: Filters) -> pl.DataFrame:
    """Where to draw release lines: `time` and `label` per service version that started in
    the window (one line per service and version, however many workflows it serves).

    First-seen times are over all the data whatever the window, so the query is made
    without one and the window applied here: every range of the same filters (the
    page's and the last hour on Reliability, a range picked in the sidebar) shares one
    cached result.
    """
    frame = call(source, "release_markers", filters.with_window(None, None))
    if filters.since is not None:
        frame = frame.filter(pl.col("first_seen") >= to_utc(filters.since))
    if filters.until is not None:
        frame = frame.filter(pl.col("first_seen") < to_utc(filters.until))
    if frame.is_empty():
        return pl.DataFrame(schema={"time": pl.Datetime("us", "UTC"), "label": pl.String})
    return (
        frame.group_by("service_name", "service_version")
        .agg(pl.col("first_seen").min().alias("time"))
        .with_columns(pl.concat_str([pl.col("service_name").fill_null("?"),
                                     pl.col("service_version")], separator=" ").alias("label"))
        .select("time", "label").sort("time")
    )


class Frames(Mapping[str, Any]):
    """A page's frames (or small collections of them), each computed when first read.

    The Overview, Cost and Reliability pages compute them all (`compute_all`) before
    drawing anything below their title, so the browser receives the page in one go:
    drawn part by part as the queries returned, the page was laid out again and its
    charts drawn again for every part, which on a new filter cost the browser more CPU
    (0.15-0.35 s more per view, measured with bench_dashboard.py on two cores) than
    showing the top early saved. Cache warming calls `compute_all` too.
    """

    def __init__(self, thunks: dict[str, Callable[[], Any]]):
        self._thunks = thunks
        self._frames: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._frames:
            self._frames[key] = self._thunks[key]()
        return self._frames[key]

    def __iter__(self):
        return iter(self._thunks)

    def __len__(self) -> int:
        return len(self._thunks)

    def compute_all(self, stop: threading.Event | None = None) -> None:
        """Compute every frame, or stop between two of them once `stop` is set."""
        for key in self._thunks:
            if stop is not None and stop.is_set():
                return
            self[key]
