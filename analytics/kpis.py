"""Per-workflow KPIs: one definition for `stepscope kpis`, the dashboard and alerts.

A run is one trace. Its workflow, outcome, tenant and latency come from its root span;
a trace without a root span is still running and is left out of every rate. The SQL is
in `sql/kpis.sql` (run KPIs) and `sql/step_kpis.sql` (per model or tool); this module
chooses the group keys and filters and returns polars DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from stepscope.analytics import run_tables, runner
from stepscope.analytics.filters import (
    BUCKETS,
    RUN_GROUP_EXPR,
    FilterError,
    Filters,
    check_group_keys,
    group_sql,
    label_weeks,
)
from stepscope.config import Config
from stepscope.store import ReadConnection

# Exactly the keys of every KPI row (besides its group keys), in this order.
KPI_KEYS = (
    "runs",
    "completed",
    "escalated",
    "failed",
    "completion_rate",
    "escalation_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "llm_calls",
    "llm_error_rate",
    "tool_calls",
    "tool_success_rate",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "tokens_per_completed_task",
    "cost_usd",
    "cost_per_run_usd",
    "cost_per_completed_task_usd",
    "unpriced_llm_calls",
)
# KPIs where a rise is good news; counts and volumes (NEUTRAL) follow traffic and are
# neither good nor bad; for the rest (latency, failures, cost per task) a rise is bad.
HIGHER_IS_BETTER = frozenset({"completion_rate", "tool_success_rate"})
NEUTRAL = frozenset({"runs", "completed", "escalated", "failed", "llm_calls", "tool_calls",
                     "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"})

# Step-level group keys (`stepscope kpis --steps --by ...`).
STEP_GROUP_EXPR = {
    "model": "ps.model",
    "tool": "ps.tool_name",
    "provider": "coalesce(ps.provider, ps.priced_provider)",
    "workflow": "r.workflow",
    "service_version": "r.service_version",
    "day": "CAST(date_trunc('day', r.run_start) AS DATE)",
}
STEP_KPI_KEYS = (
    "calls", "error_rate", "latency_p50_ms", "latency_p95_ms", "streamed_calls",
    "ttft_p50_ms", "ttft_p95_ms", "input_tokens", "output_tokens", "cached_input_tokens",
    "cost_usd", "unpriced_calls", "reported_cost_usd", "reported_minus_ours_usd",
    "price_sources",
)

MODEL_GROUP_NOTE = (
    "with --by model a run counts under each chat model it used, so runs, tokens and "
    "cost of runs that used several models appear in each of their groups"
)
RUNNING_NOTE = "runs still running count in runs and sums but in no rate"


def kpis(con: ReadConnection, filters: Filters | None = None,
         by: Sequence[str] = ("workflow",), config: Config | None = None) -> pl.DataFrame:
    """Run KPIs per group: the columns are `by` in order, then exactly KPI_KEYS.

    `by` takes any of workflow, model, service_version, tenant, user, day, week (and
    service, environment, hour); `()` gives one row over everything selected. Days are
    dates, weeks ISO labels such as `2026-W47`. With `model`, a run counts under each
    chat model it used (see MODEL_GROUP_NOTE).
    """
    return label_weeks(_run_kpis(con, filters, by, config))


def kpi_series(con: ReadConnection, filters: Filters | None = None, bucket: str = "day",
               by: Sequence[str] = ("workflow",), config: Config | None = None) -> pl.DataFrame:
    """KPIs per time bucket (hour, day or week, UTC, by run start) and group.

    Columns: `bucket_start` (UTC timestamp of the bucket's start), the `by` keys, then
    KPI_KEYS; one row per bucket and group that has runs, in time order.
    """
    if bucket not in BUCKETS:
        raise FilterError(f"unknown bucket {bucket!r}; choose from {', '.join(BUCKETS)}")
    keys = tuple(k for k in check_group_keys(by) if k not in BUCKETS)
    frame = _run_kpis(con, filters, (bucket, *keys), config)
    start = pl.col(bucket)
    if frame.schema[bucket] == pl.Date:
        start = start.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return frame.with_columns(start.alias("bucket_start")).select(
        "bucket_start", *keys, *KPI_KEYS)


def _run_kpis(con: ReadConnection, filters: Filters | None, by: Sequence[str],
              config: Config | None) -> pl.DataFrame:
    filters = filters or Filters()
    run_tables.prepare(con, config or Config())
    keys = check_group_keys(by, tuple(RUN_GROUP_EXPR))
    select, group_by, needs_models = group_sql(keys)
    where, params = filters.where_sql("r")
    frame = runner.run(
        con, "kpis", params,
        group_select=select,
        group_names="".join(f'c."{k}", ' for k in keys),
        model_join="JOIN run_models m ON m.trace_id = r.trace_id" if needs_models else "",
        where=where,
        group_by=group_by,
        order_by=_order_by([f'"{k}"' for k in keys]),
    )
    return _finish(frame, keys, KPI_KEYS)


def step_kpis(con: ReadConnection, filters: Filters | None = None,
              by: Sequence[str] = ("model",), config: Config | None = None) -> pl.DataFrame:
    """Step-level figures per model or per tool (plus optional workflow, provider, ...).

    With `model`, chat and embedding calls are separate rows (a `step_kind` column);
    with `tool`, the tool steps. Columns: the group keys, then STEP_KPI_KEYS.
    """
    filters = filters or Filters()
    keys = check_group_keys(by, tuple(STEP_GROUP_EXPR))
    if ("model" in keys) == ("tool" in keys):
        raise FilterError("step KPIs are per model or per tool: --by needs exactly one of them")
    run_tables.prepare(con, config or Config(), needs=() if "model" in keys else ("tool_parts",))
    if "model" in keys:
        keys = tuple(k for k in keys if k != "model")
        keys = ("model", "step_kind", *keys)
        step_filter = "ps.step_kind IN ('llm', 'embedding')"
    else:
        step_filter = "ps.step_kind = 'tool'"
    exprs = {**STEP_GROUP_EXPR, "step_kind": "ps.step_kind"}
    select = "".join(f'{exprs[k]} AS "{k}", ' for k in keys)
    group_by = "GROUP BY " + ", ".join(exprs[k] for k in keys)
    where, params = filters.where_sql("r")
    needs_runs = where != "TRUE" or any("r." in exprs[k] for k in keys)
    frame = runner.run(
        con, "step_kpis", params,
        group_select=select, step_filter=step_filter, where=where, group_by=group_by,
        # Tool steps come from the run tables' tool_parts rather than the store.
        **({"steps": "{{priced_steps}}"} if "model" in keys else
           {"steps": "{{unpriced_steps}}", "step_source": "tool_parts"}),
        run_join="JOIN run_facts r ON r.trace_id = ps.trace_id" if needs_runs else "",
        order_by="ORDER BY calls DESC, " + ", ".join(f'"{k}" NULLS LAST' for k in keys),
    )
    return _finish(frame, keys, STEP_KPI_KEYS)


def _order_by(columns: Sequence[str]) -> str:
    if not columns:
        return ""
    return "ORDER BY " + ", ".join(f"{c} NULLS LAST" for c in columns)


_INT_KEYS = {"runs", "completed", "escalated", "failed", "llm_calls", "tool_calls",
             "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_llm_calls",
             "calls", "streamed_calls", "unpriced_calls"}


def _finish(frame: pl.DataFrame, keys: Sequence[str], kpi_keys: Sequence[str]) -> pl.DataFrame:
    """Columns in contract order, counts as integers, rates as floats."""
    casts = [
        pl.col(k).cast(pl.Int64) if k in _INT_KEYS
        else pl.col(k).cast(pl.Float64) if k != "price_sources" else pl.col(k)
        for k in kpi_keys
    ]
    return frame.select(*keys, *casts)
