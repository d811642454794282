"""Per-workflow KPIs, cost priced at query time, comparisons and the weekly report.

Every function takes a `stepscope.store.ReadConnection` and returns a polars DataFrame;
the dashboard and alerts call these and hold no SQL of their own (docs/analytics.md).
"""

from stepscope.analytics.filters import FilterError, Filters
from stepscope.analytics.kpis import KPI_KEYS, STEP_KPI_KEYS, kpi_series, kpis, step_kpis

__all__ = [
    "KPI_KEYS",
    "STEP_KPI_KEYS",
    "FilterError",
    "Filters",
    "kpi_series",
    "kpis",
    "step_kpis",
]
