"""The per-run tables every KPI reads, kept up to date segment by segment.

Scanning ten million steps for each question is what makes dashboards slow, and almost
every question is about runs. So the first analytics call on a connection builds, as
temporary tables of that connection:

* `step_prices`: the price table (stepscope.analytics.pricing) of the models present;
* `cost_parts`, `run_parts`, `model_parts`: per store segment and run, its priced model
  calls, its step counts and root span, and the chat models it used
  (sql/cost_parts.sql, run_parts.sql, model_parts.sql);
* `tool_parts`, `failed_parts`, only once a query asks for them (`prepare(needs=...)`):
  per store segment, its tool steps and its failed steps, a few columns each
  (sql/tool_parts.sql, failed_parts.sql), which the per-tool KPIs, drift's tool mix and
  the failure clusters read instead of the store: step-level questions with a run
  filter (a dashboard page for one workflow) then cost a join of small tables, not a
  scan of every step. They hold rows, not sums, so a one-shot KPI command is not made
  to load them;
* `run_facts`: one row per run (sql/run_facts.sql);
* `run_model_costs`: model calls per run and price, labelled (sql/run_model_costs.sql);
* `run_models`: the chat models each run used (sql/run_models.sql).

A run whose steps are all in one segment (almost every run) is its parts as they are;
only runs split over segments (sql/split_runs.sql) are merged.

Store segments never change once written, so when the store publishes new ones (ingest,
compaction, retention) only their parts are computed and only the runs they touch are
merged again: a dashboard open during live ingest pays for the new data, not for all
of it. A change of the price configuration rebuilds everything.
`ReadConnection.refresh()` is cheap, so checking costs one small file read.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from stepscope.analytics import pricing, runner
from stepscope.analytics.parts_cache import PartsCache
from stepscope.config import Config
from stepscope.store import ReadConnection

# Rebuild from scratch rather than patch when this share of the runs' parts goes away.
REBUILD_WHEN_REMOVED_SHARE = 0.5
# In build order: run_parts and model_parts read the segment's cost_parts.
PART_TABLES = ("cost_parts", "run_parts", "model_parts")
# Step-level parts, built when first needed; every table's name in the parts cache.
STEP_PART_TABLES = ("tool_parts", "failed_parts")
PART_KINDS = {"cost_parts": "cost", "run_parts": "run", "model_parts": "models",
              "tool_parts": "tools", "failed_parts": "failed"}
MERGED_TABLES = ("run_facts", "run_model_costs", "run_models")
_TOUCHED = "trace_id IN (SELECT trace_id FROM touched_traces)"


@dataclass
class _State:
    fingerprint: tuple
    segments: dict[str, int]                      # segment file -> its id in the parts
    prices: pa.Table
    keys: set[pricing.PriceKey] = field(default_factory=set)
    ids: itertools.count = field(default_factory=itertools.count)
    cache: PartsCache | None = None
    tables: tuple[str, ...] = PART_TABLES               # the part tables kept up to date


_STATES: weakref.WeakKeyDictionary[ReadConnection, _State] = weakref.WeakKeyDictionary()
_LOCKS: weakref.WeakKeyDictionary[ReadConnection, threading.Lock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def prepare(con: ReadConnection, config: Config, needs: Sequence[str] = ()) -> pa.Table:
    """Bring the run tables of `con` up to date with the store and `config`'s prices.

    `needs` names step-level part tables (STEP_PART_TABLES) the caller reads; once built
    they are kept up to date like the rest. Returns the price table in use. Cheap when
    nothing changed, so call it before every query; the analytics functions do.
    """
    with _GUARD:
        lock = _LOCKS.setdefault(con, threading.Lock())
    with lock:
        con.refresh()
        files = set(con.segments())
        fingerprint = pricing.prices_fingerprint(config)
        state = _STATES.get(con)
        rebuild = state is None or state.fingerprint != fingerprint
        if not (rebuild or files != set(state.segments)
                or any(table not in state.tables for table in needs)):
            return state.prices
        if rebuild:
            state = _build(con, config, files, fingerprint)
        elif files != set(state.segments):
            state = _update(con, config, state, files)
        missing = [table for table in needs if table not in state.tables]
        if missing:
            with con.transaction():
                _add_tables(con, state, missing)
        _STATES[con] = state
        return state.prices


def segments_of_runs(con: ReadConnection, runs_sql: str,
                     params: dict[str, Any] | None = None) -> list[int] | None:
    """The ids of the store segments holding steps of the runs `runs_sql` selects (a query
    with a `trace_id` column), as the part tables' `segment` column names them; None
    when the run tables of `con` are not built (call after `prepare`).

    Step-level questions about a few days of runs (drift's model calls and tool mix) then
    read those days' segments and parts instead of all of them.
    """
    state = _STATES.get(con)
    if state is None:
        return None
    wanted = set(runner.run(con, "run_segments", params, runs=f"({runs_sql})")["segment"])
    return sorted(segment for segment in state.segments.values() if segment in wanted)


def segment_condition(segments: Sequence[int] | None, alias: str) -> str:
    """A condition keeping the part-table rows of `segments` (TRUE for None: all)."""
    if segments is None:
        return "TRUE"
    if not segments:
        return "FALSE"
    return f"{alias}.segment IN ({', '.join(str(int(s)) for s in segments)})"


def segment_steps(con: ReadConnection, segments: Sequence[int] | None) -> str:
    """A step source (a subquery for `{{step_source}}`) reading only these store segments
    (the whole store for None)."""
    state = _STATES.get(con)
    if segments is None or state is None:
        return "(" + runner.render_sql("step_source") + ")"
    chosen = set(segments)
    files = sorted(file for file, segment in state.segments.items() if segment in chosen)
    if not files:
        return "(" + runner.render_sql("step_source") + " WHERE FALSE)"
    if con.dialect == "clickhouse":
        return _partition_source(files)
    return "(" + runner.render_sql(
        "segment_steps", file="[" + ", ".join(_quoted(f) for f in files) + "]") + ")"


def invalidate(con: ReadConnection) -> None:
    """Forget the tables of `con`; the next call rebuilds them."""
    _STATES.pop(con, None)


def _build(con: ReadConnection, config: Config, files: set[str], fingerprint: tuple) -> _State:
    state = _State(fingerprint, {}, pricing.build_price_table([], config),
                   cache=PartsCache.open(con.store, config) if con.dialect == "duckdb" else None)
    if state.cache:
        state.cache.sweep(files)
    runner.register(con, "step_prices", state.prices)
    # Empty part tables with the right columns: the parts of the (empty) `steps` view.
    for table in PART_TABLES:
        runner.materialise(con, table, table, segment="-1", where="FALSE")
    _add_segments(con, config, state, sorted(files))
    runner.materialise(con, "split_runs", "split_runs", touched="TRUE")
    for table in MERGED_TABLES:
        runner.materialise(con, table, table, touched="TRUE")
    return state


def _update(con: ReadConnection, config: Config, state: _State, files: set[str]) -> _State:
    added = sorted(files - set(state.segments))
    removed = [state.segments[f] for f in set(state.segments) - files]
    if removed and _removed_share(con, removed) > REBUILD_WHEN_REMOVED_SHARE:
        return _build(con, config, files, state.fingerprint)
    runner.materialise(con, "touched_traces", "touched_traces", segments="-1")
    if removed:
        ids = ", ".join(str(i) for i in removed)
        runner.insert(con, "touched_traces", runner.render_sql("touched_traces", segments=ids))
        for table in state.tables:
            runner.delete(con, table, f"segment IN ({ids})")
        for file in set(state.segments) - files:
            del state.segments[file]
    new_ids = _add_segments(con, config, state, added)
    if new_ids:
        runner.insert(con, "touched_traces", runner.render_sql(
            "touched_traces", segments=", ".join(str(i) for i in new_ids)))
    runner.materialise(con, "split_runs", "split_runs", touched=_TOUCHED)
    for table in MERGED_TABLES:
        runner.delete(con, table, _TOUCHED)
        runner.insert(con, table, runner.render_sql(table, touched=_TOUCHED))
    con.drop_table("touched_traces")
    return state


def _add_segments(con: ReadConnection, config: Config, state: _State,
                  files: list[str]) -> list[int]:
    """Price any new models of these segments, then add their parts, one at a time.

    One segment per query keeps the segment id a constant rather than a file name to
    group by, and bounds the memory a build needs by the largest segment. Parts already
    on disk (stepscope.analytics.parts_cache) are read instead of computed.
    """
    if not files:
        return []
    cache = state.cache
    sources = {f: _segment_source(con, f) for f in files}
    keys: set[pricing.PriceKey] = set()
    for file in files:
        frame = cache.load_frame(con, file, "keys") if cache else None
        if frame is None:
            frame = runner.run(con, "price_keys", step_source=sources[file])
            if cache:
                cache.save(con, file, "keys", runner.render_sql(
                    "price_keys", step_source=sources[file]))
        keys |= set(pricing.keys_from_frame(frame))
    new_keys = keys - state.keys
    if new_keys:
        more = pricing.build_price_table(sorted(new_keys, key=_key_order), config)
        state.prices = pa.concat_tables([state.prices, more])
        state.keys |= new_keys
        runner.register(con, "step_prices", state.prices)
    ids = []
    for file in files:
        segment = next(state.ids)
        _add_parts(con, state, file, segment, state.tables, sources[file])
        state.segments[file] = segment
        ids.append(segment)
    return ids


def _add_tables(con: ReadConnection, state: _State, tables: list[str]) -> None:
    """Start keeping step-level part tables: every segment's parts, then new ones too."""
    for table in tables:
        runner.materialise(con, table, table, segment="-1", where="FALSE")
    for file, segment in state.segments.items():
        _add_parts(con, state, file, segment, tables, _segment_source(con, file))
    state.tables = (*state.tables, *tables)


def _add_parts(con: ReadConnection, state: _State, file: str, segment: int,
               tables: Sequence[str], source: str) -> None:
    """One segment's rows of the given part tables, from the parts cache or computed."""
    cache = state.cache
    for table in tables:
        kind = PART_KINDS[table]
        if cache and cache.load(con, file, kind, table, segment):
            continue
        sql = runner.render_sql(table, segment=str(segment), step_source=source, where="TRUE")
        runner.insert(con, table, sql)
        if cache:
            cache.save(con, file, kind, f"SELECT * EXCLUDE (segment) FROM {table} "
                                        f"WHERE segment = {segment}")


def _removed_share(con: ReadConnection, removed: list[int]) -> float:
    shares = runner.run(con, "removed_share", segments=", ".join(str(i) for i in removed))
    gone, total = shares.row(0)
    return (gone or 0) / total if total else 1.0


def _segment_source(con: ReadConnection, segment: str) -> str:
    """The steps of one store segment, as a subquery to compute its parts from: a
    Parquet file of the embedded store, or a partition of a ClickHouse store."""
    if con.dialect == "clickhouse":
        return _partition_source([segment])
    return "(" + runner.render_sql("segment_steps", file=_quoted(segment)) + ")"


# A ClickHouse store's partitions are days (`2026-11-15:identity`) or hours
# (`2026-11-15T07:identity`); each, the period of a step's start that selects it.
_PERIODS = {
    "day": ("CAST(s.start_time AS DATE)", "CAST({} AS DATE)"),
    "hour": ("date_trunc('hour', s.start_time)", "CAST({} AS TIMESTAMP)"),
}


def _partition_source(segments: Sequence[str]) -> str:
    """The steps of some partitions of a ClickHouse store (all of one size), as a subquery."""
    starts = [segment.split(":", 1)[0] for segment in segments]
    size = "hour" if "T" in starts[0] else "day"
    period, literal = _PERIODS[size]
    values = (start.replace("T", " ") + ":00:00" if size == "hour" else start for start in starts)
    return "(" + runner.render_sql(
        "partition_steps", period=period,
        starts=", ".join(literal.format(_quoted(v)) for v in values)) + ")"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key_order(key: pricing.PriceKey) -> tuple[str, str, str]:
    return (key.provider or "", key.request_model or "", key.response_model or "")
