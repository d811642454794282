"""KPIs and unpriced calls over many time windows in one query, for alert replays.

Replaying two weeks of alert rules hour by hour asks for the same KPIs over hundreds of
overlapping windows. Asking `kpis()` once per window costs one query each; this module
asks once for all of them: the KPI query of `sql/kpis.sql` (the one definition of every
KPI) grouped by window as well, through a join of the runs with a table of windows. A
run belongs to each window its start falls in, exactly as `Filters(since, until)` would
select it, so every row equals what `kpis()` returns for that window alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl
import pyarrow as pa

from stepscope.analytics import run_tables, runner
from stepscope.analytics.filters import RUN_GROUP_EXPR, Filters, check_group_keys, label_weeks
from stepscope.analytics.kpis import KPI_KEYS
from stepscope.analytics.kpis import _finish as finish_kpi_frame
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import Window, to_utc

WINDOWS_TABLE = "alert_windows"


def windowed_kpis(con: ReadConnection, windows: Sequence[Window], filters: Filters | None = None,
                  by: Sequence[str] = ("workflow",), config: Config | None = None) -> pl.DataFrame:
    """Run KPIs per window and group: `window_start`, `window_end`, the `by` keys, KPI_KEYS.

    `filters` must not set a time range (the windows are the time range). Windows with no
    runs have no row, as groups with no runs have none in `kpis()`.
    """
    filters = filters or Filters()
    if filters.since is not None or filters.until is not None:
        raise ValueError("windowed_kpis takes its time ranges from `windows`, not `filters`")
    keys = check_group_keys(by, tuple(RUN_GROUP_EXPR))
    if not windows:
        return _empty(keys)
    where, params = _register_windows(con, windows, filters, config)
    group_exprs = ["w.window_start", "w.window_end", *(RUN_GROUP_EXPR[k] for k in keys)]
    names = ["window_start", "window_end", *keys]
    joins = (f"JOIN {WINDOWS_TABLE} w ON r.run_start >= w.window_start "
             "AND r.run_start < w.window_end")
    if "model" in keys:
        joins += " JOIN run_models m ON m.trace_id = r.trace_id"
    frame = runner.run(
        con, "kpis", params,
        group_select="".join(f'{e} AS "{n}", ' for e, n in zip(group_exprs, names, strict=True)),
        group_names="".join(f'c."{n}", ' for n in names),
        model_join=joins,
        where=where,
        group_by="GROUP BY " + ", ".join(group_exprs),
        order_by="ORDER BY " + ", ".join(f'"{n}" NULLS LAST' for n in names),
    )
    # The same casts and column order as `kpis()` (counts as integers, rates as floats).
    return label_weeks(finish_kpi_frame(frame, names, KPI_KEYS))


def windowed_unpriced_calls(con: ReadConnection, windows: Sequence[Window],
                            filters: Filters | None = None, by: Sequence[str] = (),
                            config: Config | None = None) -> pl.DataFrame:
    """Model calls with no price per window and model (plus `by`, e.g. workflow).

    Columns: `window_start`, `window_end`, `model`, the `by` keys, `unpriced_calls`; only
    windows and models with such calls have rows. The counts are `step_kpis`' per-model
    `unpriced_calls` (a run's calls count under their own model, never a co-used one).
    """
    filters = filters or Filters()
    if filters.since is not None or filters.until is not None:
        raise ValueError("windowed_unpriced_calls takes its time ranges from `windows`")
    keys = tuple(k for k in check_group_keys(by, tuple(RUN_GROUP_EXPR)) if k != "model")
    if not windows:
        return pl.DataFrame(schema={"window_start": pl.Datetime("us", "UTC"),
                                    "window_end": pl.Datetime("us", "UTC"), "model": pl.String,
                                    **{k: pl.String for k in keys}, "unpriced_calls": pl.Int64})
    where, params = _register_windows(con, windows, filters, config)
    exprs = ["ps.model", *(RUN_GROUP_EXPR[k] for k in keys)]
    frame = runner.run(
        con, "windowed_unpriced_calls", params,
        group_select="".join(f'{e} AS "{n}", ' for e, n in zip(exprs, ("model", *keys),
                                                               strict=True)),
        where=where,
        group_by=", ".join(exprs),
    )
    return frame.with_columns(pl.col("unpriced_calls").cast(pl.Int64))


def _register_windows(con: ReadConnection, windows: Sequence[Window], filters: Filters,
                      config: Config | None) -> tuple[str, dict]:
    """Prepare the run tables and the windows table; the run condition over all windows."""
    run_tables.prepare(con, config or Config())
    unique = sorted({(w.start, w.end) for w in windows})
    runner.register(con, WINDOWS_TABLE, pa.table({
        "window_start": pa.array([_naive(s) for s, _ in unique], pa.timestamp("us")),
        "window_end": pa.array([_naive(e) for _, e in unique], pa.timestamp("us")),
    }))
    bounded = filters.with_window(min(s for s, _ in unique), max(e for _, e in unique))
    return bounded.where_sql("r")


def _naive(value: datetime) -> datetime:
    return to_utc(value).replace(tzinfo=None)


def _empty(keys: Sequence[str]) -> pl.DataFrame:
    schema = {"window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC")}
    schema.update({k: pl.String for k in keys})
    schema.update({k: pl.Float64 for k in KPI_KEYS})
    return pl.DataFrame(schema=schema)
