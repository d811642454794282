"""Two selections of runs side by side: the basis of week-over-week and release views.

A selection is a time window (`2026-11-09..2026-11-16`, `now-14d..now-7d`, `7d`), a
`key=value` choice (`service_version=1.4.0`, `model=gpt-4o`), or both joined by commas
(`service_version=1.4.0,now-7d..now`). Each side's KPIs come from
`stepscope.analytics.kpis.kpis`, so a comparison never disagrees with `stepscope kpis`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from stepscope.analytics.filters import FilterError, Filters
from stepscope.analytics.kpis import HIGHER_IS_BETTER, KPI_KEYS, NEUTRAL, kpis
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import TimeSpecError, parse_window

# `key=value` selections and the Filters field each fills.
SELECTION_KEYS = {
    "service_version": "service_versions",
    "model": "models",
    "workflow": "workflows",
    "environment": "environments",
    "tenant": "tenants",
    "user": "users",
}
COMPARE_COLUMNS = ("metric", "baseline", "current", "change", "relative_change", "assessment")


@dataclass(frozen=True)
class Selection:
    """One side of a comparison: the filters it adds, and how to name it."""

    label: str
    filters: Filters


def parse_selection(text: str, base: Filters | None = None,
                    now: datetime | None = None) -> Selection:
    """Read `START..END`, a duration, `key=value`, or several of them joined by commas.

    The result narrows `base` (e.g. the command's --workflow or --since); a window
    replaces its time range.
    """
    filters = base or Filters()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if "=" in part and ".." not in part:
            key, value = (x.strip() for x in part.split("=", 1))
            if key not in SELECTION_KEYS or not value:
                raise FilterError(
                    f"{part!r}: expected a window (START..END or e.g. 7d) or KEY=VALUE with "
                    f"KEY one of {', '.join(SELECTION_KEYS)}"
                )
            field = SELECTION_KEYS[key]
            filters = replace(filters, **{field: (*getattr(filters, field), value)})
        else:
            try:
                window = parse_window(part, now)
            except TimeSpecError as exc:
                raise FilterError(str(exc)) from None
            filters = filters.with_window(window.start, window.end)
    return Selection(str(text).strip(), filters)


def compare(con: ReadConnection, baseline: Selection | Filters, current: Selection | Filters,
            by: Sequence[str] = ("workflow",), config: Config | None = None,
            metrics: Sequence[str] = KPI_KEYS) -> pl.DataFrame:
    """KPIs of two selections side by side, one row per group and metric.

    Columns: the `by` keys, `metric`, `baseline`, `current`, `change` (current minus
    baseline), `relative_change` (change / |baseline|; NULL when the baseline is 0 or
    missing) and `assessment` (`better`, `worse`, `same`, or NULL for metrics that are
    neither good nor bad, such as token counts, or when a side is missing). A group
    present on one side only still has its row, with the other side NULL.
    """
    unknown = [m for m in metrics if m not in KPI_KEYS]
    if unknown:
        raise FilterError(f"unknown metric {unknown[0]!r}; choose from {', '.join(KPI_KEYS)}")
    keys = list(by)
    sides = []
    for name, selection in (("baseline", baseline), ("current", current)):
        filters = selection.filters if isinstance(selection, Selection) else selection
        frame = kpis(con, filters, keys, config=config)
        sides.append(_long(frame, keys, metrics, name))
    joined = sides[0].join(sides[1], on=[*keys, "metric"], how="full", coalesce=True,
                           nulls_equal=True)
    order = {m: i for i, m in enumerate(metrics)}
    change = pl.col("current") - pl.col("baseline")
    out = joined.with_columns(
        change.alias("change"),
        pl.when(pl.col("baseline").is_null() | (pl.col("baseline") == 0)).then(None)
        .otherwise(change / pl.col("baseline").abs()).alias("relative_change"),
        _assessment(change).alias("assessment"),
        pl.col("metric").replace_strict(order, return_dtype=pl.Int32).alias("_order"),
    )
    return out.sort([*keys, "_order"], nulls_last=True).select(*keys, *COMPARE_COLUMNS)


def _long(frame: pl.DataFrame, keys: list[str], metrics: Sequence[str], side: str) -> pl.DataFrame:
    values = frame.select(*keys, *[pl.col(m).cast(pl.Float64) for m in metrics])
    return values.unpivot(index=keys, on=list(metrics), variable_name="metric", value_name=side)


def _assessment(change: pl.Expr) -> pl.Expr:
    metric = pl.col("metric")
    good_up = metric.is_in(list(HIGHER_IS_BETTER))
    neutral = metric.is_in(list(NEUTRAL))
    return (
        pl.when(change.is_null() | neutral).then(None)
        .when(change.abs() < 1e-12).then(pl.lit("same"))
        .when((change > 0) == good_up).then(pl.lit("better"))
        .otherwise(pl.lit("worse"))
    )
