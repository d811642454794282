"""Queries only the dashboard needs: the distributions behind a drift finding.

`drift_findings` reports each side of a continuous metric as a summary (median, p95,
mean); the Drift page also draws both samples as histograms side by side. The values
are selected exactly as `drift_runs.sql` and `drift_calls.sql` select them (finished
runs of one workflow on each side; successful chat calls of one model), and binned on
edges shared by both sides so the two histograms compare bar for bar.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl

from stepscope.analytics import run_tables, runner
from stepscope.analytics.drift import Side
from stepscope.analytics.filters import FilterError, Filters
from stepscope.config import Config
from stepscope.store import ReadConnection

#: metric -> (level, SQL value expression); the run level reads run_facts r, the call
#: level the steps s of those runs (from the store segments that hold them).
DISTRIBUTION_METRICS = {
    "run_latency_ms": ("run", "r.latency_ms"),
    "steps_per_run": ("run", "CAST(r.steps AS DOUBLE)"),
    "cost_per_run_usd": ("run", "CASE WHEN r.unpriced_calls = 0 THEN r.cost_usd END"),
    "step_latency_ms": ("call", "s.duration_ms"),
    "input_tokens_per_call": ("call", "CAST(s.input_tokens AS DOUBLE)"),
    "output_tokens_per_call": ("call", "CAST(s.output_tokens AS DOUBLE)"),
}
DEFAULT_BINS = 30
#: Bins span these quantiles of both sides together, so one outlier cannot flatten the rest;
#: values beyond them count in the first or last bin.
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99

_RUN_SQL = """
SELECT {value} AS value
FROM run_facts r
WHERE r.finished AND r.workflow = $workflow AND {side} AND {run_filter}
"""
_SIDE_RUNS_SQL = """
SELECT r.trace_id
FROM run_facts r
WHERE r.finished AND r.workflow = $workflow AND {side} AND {run_filter}
"""
_CALL_SQL = """
SELECT {value} AS value
FROM {steps} s
JOIN run_facts r ON r.trace_id = s.trace_id
WHERE s.step_kind = 'llm' AND NOT coalesce((
{failed}
), FALSE)
  AND r.finished AND r.workflow = $workflow AND {side} AND {run_filter} {model_condition}
"""


def _prefixed(where: str, params: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """Rename a condition's parameters so that two conditions never share a name."""
    renamed = re.sub(r"\$(\w+)", lambda m: f"${prefix}_{m.group(1)}", where)
    return renamed, {f"{prefix}_{k}": v for k, v in params.items()}


def _values(con: ReadConnection, metric: str, side: Side, workflow: str, model: str | None,
            filters: Filters) -> np.ndarray:
    level, value = DISTRIBUTION_METRICS[metric]
    side_where, params = _prefixed(*side.filters().where_sql("r"), "side")
    run_where, run_params = _prefixed(*filters.with_window(None, None).where_sql("r"), "run")
    params.update(run_params)
    params["workflow"] = workflow
    if level == "run":
        sql = _RUN_SQL.format(value=value, side=side_where, run_filter=run_where)
    else:
        model_condition = ""
        if model is not None:
            model_condition = "AND coalesce(s.request_model, s.response_model) = $model"
            params["model"] = model
        runs = _SIDE_RUNS_SQL.format(side=side_where, run_filter=run_where)
        sql = _CALL_SQL.format(value=value, side=side_where, run_filter=run_where,
                               steps=run_tables.segment_steps(
                                   con, run_tables.segments_of_runs(con, runs, params)),
                               failed=runner.render_sql("step_failed"),
                               model_condition=model_condition)
    values = runner.query(con, sql, params)["value"].drop_nulls()
    return values.to_numpy().astype(np.float64)


def drift_distribution(con: ReadConnection, metric: str, baseline: Side, current: Side, *,
                       workflow: str, model: str | None = None, filters: Filters | None = None,
                       bins: int = DEFAULT_BINS, config: Config | None = None) -> pl.DataFrame:
    """Histograms of a continuous drift metric on both sides, on shared bins.

    Columns: side (baseline, current), bin_start, bin_end, count, share (of the side's
    values); one row per side and bin. Empty when neither side has a value.
    """
    if metric not in DISTRIBUTION_METRICS:
        raise FilterError(f"no distribution for {metric!r}; choose from "
                          f"{', '.join(DISTRIBUTION_METRICS)}")
    run_tables.prepare(con, config or Config())
    filters = filters or Filters()
    sides = {"baseline": _values(con, metric, baseline, workflow, model, filters),
             "current": _values(con, metric, current, workflow, model, filters)}
    every = np.concatenate(list(sides.values()))
    schema = {"side": pl.String, "bin_start": pl.Float64, "bin_end": pl.Float64,
              "count": pl.Int64, "share": pl.Float64}
    if every.size == 0:
        return pl.DataFrame(schema=schema)
    low, high = np.quantile(every, [LOW_QUANTILE, HIGH_QUANTILE])
    if high <= low:
        low, high = float(every.min()), float(every.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    rows = []
    for side, values in sides.items():
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        total = max(1, int(values.size))
        rows += [(side, float(edges[i]), float(edges[i + 1]), int(c), c / total)
                 for i, c in enumerate(counts)]
    return pl.DataFrame(rows, schema=schema, orient="row")
