"""Overview, for engineering leads: this period's KPIs against the one before, per workflow."""

from __future__ import annotations

import polars as pl
import streamlit as st

from stepscope.analytics.kpis import HIGHER_IS_BETTER, NEUTRAL
from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import (
    delta_html,
    link,
    relative_change,
    sparkline_svg,
    traces_url,
)
from stepscope.dashboard.context import page_context

#: KPI cards: (KPI key, label, format, help)
CARDS = (
    ("runs", "Runs", "int", "Traces that started in the period."),
    ("completion_rate", "Completion rate", "pct", "Completed runs / finished runs."),
    ("escalation_rate", "Escalation rate", "pct", "Runs handed to a human / finished runs."),
    ("tool_success_rate", "Tool-call success", "pct", "Tool calls without an error status."),
    ("latency_p95_ms", "Run latency p95", "ms", "95th percentile of the root span's duration."),
    ("cost_per_completed_task_usd", "Cost / completed task", "usd",
     "Spend of all finished runs, failed ones included, divided by completed runs."),
    ("cost_usd", "Spend", "usd", "Priced model calls; unpriced calls are counted apart."),
    ("tokens_per_completed_task", "Tokens / completed task", "tokens",
     "Input plus output tokens of finished runs per completed run."),
)
RATE_KEYS = {"completion_rate", "escalation_rate", "tool_success_rate", "llm_error_rate"}

#: Per-workflow table columns: (KPI key, header, format)
TABLE_COLUMNS = (
    ("runs", "Runs", "int"),
    ("completion_rate", "Completion", "pct"),
    ("escalation_rate", "Escalation", "pct"),
    ("tool_success_rate", "Tool success", "pct"),
    ("latency_p95_ms", "Latency p95", "ms"),
    ("cost_per_completed_task_usd", "Cost / completed", "usd"),
    ("tokens_per_completed_task", "Tokens / completed", "tokens"),
    ("cost_usd", "Spend", "usd"),
)
TREND_CHOICES = {
    "Completion rate": ("completion_rate", True),
    "Escalation rate": ("escalation_rate", True),
    "Tool-call success": ("tool_success_rate", True),
    "Run latency p95": ("latency_p95_ms", False),
    "Cost per completed task": ("cost_per_completed_task_usd", False),
    "Runs": ("runs", False),
}


def better_direction(key: str) -> bool | None:
    """True when a rise of `key` is good news, False when bad, None when neither."""
    if key in NEUTRAL:
        return None
    return key in HIGHER_IS_BETTER


def change_text(key: str, current: float | None, previous: float | None) -> tuple[float | None, str | None]:
    """The relative change and, for rates, its spelling in percentage points."""
    if key in RATE_KEYS:
        if current is None or previous is None:
            return None, None
        points = (current - previous) * 100
        return (current - previous), f"{abs(points):.1f} pp"
    return relative_change(current, previous), None


def _cards(ctx, current: dict, previous: dict, series: pl.DataFrame) -> None:
    for row_start in (0, 4):
        columns = st.columns(4)
        for column, (key, label, kind, help_text) in zip(columns, CARDS[row_start:row_start + 4],
                                                         strict=True):
            value = current.get(key)
            change, points = change_text(key, value, previous.get(key))
            direction = better_direction(key)
            if change is None:
                delta = None
            else:
                delta = points if points else f"{abs(change) * 100:.1f}%"
                delta = ("+" if change > 0 else "-") + delta if abs(change) >= 0.0005 else "±0"
            spark = [v for v in series[key].to_list() if v is not None] if key in series.columns else []
            column.metric(
                label, components.FORMATTERS[kind](value), delta,
                delta_color="off" if direction is None else ("normal" if direction else "inverse"),
                help=help_text, border=True, chart_data=spark if len(spark) > 1 else None,
                chart_type="area" if key in ("runs", "cost_usd") else "line",
                delta_description=periods.short_comparison(ctx.window),
            )


def _workflow_table(ctx, current: pl.DataFrame, previous: pl.DataFrame, series: pl.DataFrame) -> None:
    prev = {row["workflow"]: row for row in previous.to_dicts()}
    trend = {
        name: part.sort("bucket_start")["runs"].to_list()
        for (name,), part in series.group_by("workflow")
    } if not series.is_empty() else {}
    rows = []
    for row in current.sort("runs", descending=True).to_dicts():
        name = row["workflow"]
        shown = name if name is not None else "(no workflow)"
        before = prev.get(name, {})
        scoped = ctx.filters.with_values(workflows=(name,)) if name is not None else ctx.filters
        cells = [link(shown, traces_url(scoped))]
        for key, _, kind in TABLE_COLUMNS:
            value = row.get(key)
            change, points = change_text(key, value, before.get(key))
            text = components.FORMATTERS[kind](value)
            if key == "runs":
                text = link(text, traces_url(scoped))
            elif key == "escalation_rate" and row.get("escalated"):
                text = link(text, traces_url(scoped, outcome="escalated"))
            elif key == "completion_rate" and row.get("failed"):
                text = link(text, traces_url(scoped, outcome="failed"))
            cells.append(text + delta_html(change, better_direction(key), absolute=points))
        cells.append(sparkline_svg(trend.get(name, [])))
        rows.append(cells)
    headers = ["Workflow", *(h for _, h, _ in TABLE_COLUMNS), "Runs trend"]
    components.html_table(headers, rows, header_help={
        "Completion": "Completed / finished runs; the link lists the failed runs",
        "Escalation": "Escalated / finished runs; the link lists them",
        "Cost / completed": "Spend of all finished runs divided by completed runs",
    })
    st.caption(f"Deltas compare with {periods.comparison_label(ctx.window)}; green is good news, "
               "red is bad, whichever the direction. Rates change in percentage points.")


def load(ctx) -> data.Frames:
    """Every frame the page shows, for the selected filters (cached by `data.call`)."""
    filters = ctx.analytics_filters
    previous = ctx.shifted(-ctx.window.duration)
    bucket = periods.bucket_for(ctx.window)
    return data.Frames({
        "current_all": lambda: data.call(ctx.source, "kpis", filters, by=()),
        "previous_all": lambda: data.call(ctx.source, "kpis", previous, by=()),
        "overall_series": lambda: data.call(ctx.source, "kpi_series", filters, bucket=bucket, by=()),
        "by_workflow": lambda: data.call(ctx.source, "kpis", filters, by=("workflow",)),
        "previous_by_workflow": lambda: data.call(ctx.source, "kpis", previous, by=("workflow",)),
        "series": lambda: data.call(ctx.source, "kpi_series", filters, bucket=bucket, by=("workflow",)),
        "markers": lambda: data.release_marker_lines(ctx.source, filters),
    })


def main() -> None:
    ctx = page_context()
    components.page_header("Overview", "Per-workflow KPIs", ctx.filters, periods.window_label(ctx))
    frames = load(ctx)
    frames.compute_all()                    # then the page in one go: see data.Frames
    current_all = frames["current_all"]
    if current_all.is_empty() or not current_all["runs"][0]:
        components.empty_state(
            "No runs in this range",
            "Nothing matches the selected time range and filters. Widen the range or clear "
            "filters in the sidebar.",
        )
        return
    previous_all = frames["previous_all"]
    _cards(ctx, current_all.row(0, named=True),
           previous_all.row(0, named=True) if not previous_all.is_empty() else {},
           frames["overall_series"].sort("bucket_start"))

    st.subheader("Workflows")
    by_workflow, series = frames["by_workflow"], frames["series"]
    _workflow_table(ctx, by_workflow, frames["previous_by_workflow"], series)
    if by_workflow.height == 1:
        st.caption("Only one workflow in this selection; comparisons between workflows need more.")

    st.subheader("Trends")
    choice = st.segmented_control("Metric", list(TREND_CHOICES), default="Completion rate",
                                  key="overview_trend", label_visibility="collapsed")
    key, percent = TREND_CHOICES[choice or "Completion rate"]
    markers = frames["markers"]
    fig = charts.line_chart(series, x="bucket_start", y=key, color="workflow", percent=percent,
                            markers=markers, height=360,
                            y_format="$,.4f" if key.endswith("_usd") else ",.0f")
    components.plot(fig, key="overview_trend_chart")
    if not markers.is_empty():
        st.caption("Dotted lines mark the first run of a new service version.")


if __name__ == "__main__":
    main()
