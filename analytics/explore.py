"""Spend, traces and releases: what the dashboard's cost page and trace explorer show.

Like the KPIs, these read the per-run tables (stepscope.analytics.run_tables), except
`trace_steps` and `price_table`, which read the steps themselves. Each returns a
polars DataFrame; timestamps are UTC-aware.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import polars as pl

from stepscope.analytics import pricing, run_tables, runner
from stepscope.analytics.filters import FilterError, Filters
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import to_utc

COST_KEYS = {
    "model": "c.model",
    "provider": "c.provider",
    "workflow": "r.workflow",
    "tenant": "r.tenant_id",
    "user": "r.user_id",
    "service_version": "r.service_version",
}
COST_BUCKETS = {
    "hour": "date_trunc('hour', r.run_start)",
    "day": "CAST(date_trunc('day', r.run_start) AS TIMESTAMP)",
    "week": "CAST(date_trunc('week', r.run_start) AS TIMESTAMP)",
    "month": "CAST(date_trunc('month', r.run_start) AS TIMESTAMP)",
    None: "CAST(NULL AS TIMESTAMP)",
}
TRACE_ORDER = {
    "recent": "r.run_start DESC, r.trace_id",
    "oldest": "r.run_start, r.trace_id",
    "cost": "r.cost_usd DESC NULLS LAST, r.trace_id",
    "latency": "r.latency_ms DESC NULLS LAST, r.trace_id",
}


def cost_breakdown(con: ReadConnection, filters: Filters | None = None,
                   by: str | Sequence[str] = "model",
                   bucket: Literal["hour", "day", "week", "month"] | None = "day",
                   config: Config | None = None) -> pl.DataFrame:
    """Spend per time bucket and `by` (any of model, provider, workflow, tenant, user,
    service_version): calls, tokens, `cost_usd` (priced part; NULL when nothing could be
    priced), `unpriced_calls`, the spans' own `reported_cost_usd` and
    `reported_minus_ours_usd`, and `price_sources` (every source behind the figure).

    `bucket=None` gives one row per key over the whole selection (`bucket_start` NULL).
    Rows are in time order, costliest first within a bucket.
    """
    keys = (by,) if isinstance(by, str) else tuple(by)
    unknown = [k for k in keys if k not in COST_KEYS]
    if unknown or not keys:
        raise FilterError(f"unknown cost key {(unknown or [''])[0]!r}; choose from "
                          f"{', '.join(COST_KEYS)}")
    if bucket not in COST_BUCKETS:
        raise FilterError(f"unknown bucket {bucket!r}; choose from hour, day, week, month")
    filters = filters or Filters()
    run_tables.prepare(con, config or Config())
    where, params = filters.where_sql("r")
    return runner.run(
        con, "cost_breakdown", params, bucket=COST_BUCKETS[bucket], where=where,
        keys_select="".join(f'{COST_KEYS[k]} AS "{k}", ' for k in keys),
        keys_group="".join(f", {COST_KEYS[k]}" for k in keys),
    )


def find_traces(con: ReadConnection, filters: Filters | None = None, *,
                outcome: str | None = None, with_errors: bool | None = None,
                min_cost_usd: float | None = None, min_latency_ms: float | None = None,
                session_id: str | None = None, trace_id_prefix: str | None = None,
                order: str = "recent", limit: int = 100,
                config: Config | None = None) -> pl.DataFrame:
    """Runs for the trace explorer: one row per run with its facts, tokens and cost.

    `outcome` is completed, escalated, failed, unknown or running; `with_errors` keeps
    runs with (or without) a failed step; `order` is recent, oldest, cost or latency.
    The runs of one session in order: `session_id=..., order="oldest"`.
    """
    if order not in TRACE_ORDER:
        raise FilterError(f"unknown order {order!r}; choose from {', '.join(TRACE_ORDER)}")
    filters = filters or Filters()
    run_tables.prepare(con, config or Config())
    where, params = filters.where_sql("r")
    conds = [where]
    if outcome is not None:
        conds.append("r.outcome = $outcome")
        params["outcome"] = outcome
    if with_errors is not None:
        conds.append("r.error_steps > 0" if with_errors else "r.error_steps = 0")
    if min_cost_usd is not None:
        conds.append("r.cost_usd >= $min_cost")
        params["min_cost"] = float(min_cost_usd)
    if min_latency_ms is not None:
        conds.append("r.latency_ms >= $min_latency")
        params["min_latency"] = float(min_latency_ms)
    if session_id is not None:
        conds.append("r.session_id = $session_id")
        params["session_id"] = session_id
    if trace_id_prefix:
        conds.append("r.trace_id LIKE $trace_prefix")
        params["trace_prefix"] = trace_id_prefix.lower().replace("%", "").replace("_", "") + "%"
    params["limit"] = int(limit)
    return runner.run(con, "find_traces", params, where=" AND ".join(conds),
                      order_by=TRACE_ORDER[order])


def top_cost_traces(con: ReadConnection, filters: Filters | None = None, limit: int = 20,
                    config: Config | None = None) -> pl.DataFrame:
    """The costliest runs of the selection (find_traces ordered by cost, priced runs only)."""
    return find_traces(con, filters, min_cost_usd=0.0, order="cost", limit=limit, config=config)


def trace_steps(con: ReadConnection, trace_id: str, config: Config | None = None) -> pl.DataFrame:
    """A trace's steps in start order for a waterfall: `offset_ms` from the trace's first
    step, `duration_ms`, `depth` in the span tree (0 = root; orphans of a missing parent
    count from 1), status, model/tool, tokens, `cost_usd` with `price_source`, and the
    span's own `reported_cost_usd` with `reported_minus_ours_usd`."""
    run_tables.prepare(con, config or Config())
    frame = runner.run(con, "trace_steps", {"trace_id": trace_id.lower()})
    return frame.with_columns(pl.Series("depth", _depths(frame), dtype=pl.Int32))


def _depths(frame: pl.DataFrame) -> list[int]:
    """Depth of each span from the parent links (a trace holds at most a few thousand)."""
    parents = dict(zip(frame["span_id"].to_list(), frame["parent_span_id"].to_list(), strict=True))
    depths: dict[str, int] = {}

    def depth(span: str, seen: frozenset[str] = frozenset()) -> int:
        if span in depths:
            return depths[span]
        parent = parents.get(span)
        if parent is None:
            value = 0
        elif parent not in parents or parent in seen:
            value = 1
        else:
            value = depth(parent, seen | {span}) + 1
        depths[span] = value
        return value

    return [depth(s) for s in frame["span_id"].to_list()]


def release_markers(con: ReadConnection, filters: Filters | None = None,
                    config: Config | None = None) -> pl.DataFrame:
    """First and last time each service version was seen per service and workflow.

    First-seen times are over all the data, not the window, so that a release is marked
    where it really started; rows are kept when their first-seen time is inside the
    filters' window (all when there is none). Columns: service_name, workflow,
    service_version, first_seen, last_seen, runs.
    """
    filters = filters or Filters()
    run_tables.prepare(con, config or Config())
    where, params = filters.with_window(None, None).where_sql("r")
    frame = runner.run(con, "release_markers", params, where=where)
    if filters.since is not None:
        frame = frame.filter(pl.col("first_seen") >= to_utc(filters.since))
    if filters.until is not None:
        frame = frame.filter(pl.col("first_seen") < to_utc(filters.until))
    return frame


def price_table(con: ReadConnection, config: Config | None = None) -> pl.DataFrame:
    """The prices in use for the store's models, as finance reads them: per provider and
    model, each period, time-of-day window and input-token tier with its rates (USD per
    million tokens) and `price_source`, plus how many calls each model has and when it was
    first and last seen. Models no source prices show `price_source` "unpriced"."""
    prices = run_tables.prepare(con, config or Config())
    usage = runner.run(con, "price_keys")
    return pricing.describe_price_table(prices, usage)


def store_extent(con: ReadConnection) -> tuple[int | None, int]:
    """(end of the newest step in ns since the epoch, number of finished runs) of the store."""
    con.refresh()
    newest, runs = runner.run(con, "store_extent").row(0)
    return newest, int(runs or 0)
