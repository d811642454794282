"""Reliability, for on-call: what fails now, since when, where, and what changed."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from stepscope.analytics.filters import Filters
from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import fmt_int, fmt_ms, fmt_pct, fmt_time, link, traces_url
from stepscope.dashboard.context import page_context
from stepscope.dashboard.recent_changes import describe_changes

RECENT = timedelta(hours=1)
RECENT_BASELINE = timedelta(hours=24)


def _cards(ctx, now_row: dict, before: dict) -> None:
    columns = st.columns(5)
    specs = (
        ("failed", "Failed runs", fmt_int, False, "Runs whose outcome is failed."),
        ("llm_error_rate", "Model-call error rate", fmt_pct, False,
         "Chat/completion calls with an error status."),
        ("tool_success_rate", "Tool-call success", fmt_pct, True, "Tool calls without an error."),
        ("latency_p50_ms", "Run latency p50", fmt_ms, False, "Median root-span duration."),
        ("latency_p95_ms", "Run latency p95", fmt_ms, False, "95th percentile root-span duration."),
    )
    for column, (key, label, fmt, good_up, help_text) in zip(columns, specs, strict=True):
        value, previous = now_row.get(key), before.get(key)
        if value is None or previous is None:
            delta = None
        elif key.endswith("_rate"):
            delta = f"{(value - previous) * 100:+.2f} pp"
        else:
            change = components.relative_change(value, previous)
            delta = None if change is None else f"{change * 100:+.1f}%"
        column.metric(label, fmt(value), delta, delta_color="normal" if good_up else "inverse",
                      help=help_text, border=True,
                      delta_description=periods.short_comparison(ctx.window))


def _over_time(frames: dict[str, pl.DataFrame]) -> None:
    series, overall, markers = frames["series"], frames["overall"], frames["markers"]
    left, right = st.columns(2)
    with left:
        components.plot(charts.line_chart(
            series, x="bucket_start", y="tool_success_rate", color="workflow", percent=True,
            title="Tool-call success rate", markers=markers,
        ), key="rel_tool_chart")
    with right:
        components.plot(charts.line_chart(
            series, x="bucket_start", y="llm_error_rate", color="workflow", percent=True,
            title="Model-call error rate", markers=markers,
        ), key="rel_error_chart")
    latency = overall.select(
        "bucket_start",
        pl.col("latency_p50_ms").alias("p50"),
        pl.col("latency_p95_ms").alias("p95"),
    ).unpivot(index="bucket_start", variable_name="percentile", value_name="latency_ms")
    components.plot(charts.line_chart(
        latency, x="bucket_start", y="latency_ms", color="percentile", y_format=",.0f",
        title="Run latency (ms)", markers=markers,
    ), key="rel_latency_chart")
    if markers is not None and not markers.is_empty():
        st.caption("Dotted lines mark the first run of a new service version.")


def _tools(tools: pl.DataFrame) -> None:
    if tools.is_empty():
        return
    st.subheader("Tools")
    shown = tools.select("tool", "calls", "error_rate", "latency_p50_ms", "latency_p95_ms")
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="–", column_config={
        "tool": st.column_config.TextColumn("Tool"),
        "calls": st.column_config.NumberColumn("Calls", format="localized"),
        "error_rate": st.column_config.ProgressColumn("Error rate", format="percent", min_value=0,
                                                      max_value=max(0.05, float(
                                                          shown["error_rate"].max() or 0))),
        "latency_p50_ms": st.column_config.NumberColumn("Latency p50 (ms)", format="%.0f"),
        "latency_p95_ms": st.column_config.NumberColumn("Latency p95 (ms)", format="%.0f"),
    })


def _clusters(ctx, found: pl.DataFrame) -> None:
    st.subheader("Failure clusters")
    if found.is_empty():
        components.empty_state("No failures in this range",
                               "No step failed in the selected runs and time range.", icon="✅")
        return
    new = int(found["is_new"].sum())
    st.caption(
        f"{fmt_int(found['count'].sum())} failed steps in {found.height} distinct failures"
        + (f", {new} new (never seen in the 7 days before the range)" if new else "")
        + ". Select a row for its examples."
    )
    table = found.select(
        pl.col("label").alias("failure"), pl.col("is_new").alias("new"),
        "count", "trend",
        pl.concat_str([pl.col("error_type").fill_null(""),
                       pl.col("http_status").cast(pl.String).fill_null("")], separator=" ")
        .str.strip_chars().alias("error"),
        pl.col("tools").list.join(", ").alias("tools"),
        pl.col("workflows").list.join(", ").alias("workflows"),
        pl.col("models").list.join(", ").alias("models"),
        pl.col("service_versions").list.join(", ").alias("versions"),
        "first_seen", "last_seen", "cluster_id",
    )
    event = st.dataframe(
        table, hide_index=True, width="stretch", key="rel_clusters", on_select="rerun",
        placeholder="–",
        selection_mode="single-row",
        column_config={
            "failure": st.column_config.TextColumn("Failure", width="large", pinned=True),
            "new": st.column_config.CheckboxColumn(
                "New", help="Not seen in the 7 days before the range", width="small"),
            "count": st.column_config.NumberColumn("Count", format="localized"),
            "trend": st.column_config.BarChartColumn(
                f"Trend (per {found['trend_bucket'][0]})", y_min=0),
            "error": st.column_config.TextColumn("Error / HTTP"),
            "first_seen": st.column_config.DatetimeColumn("First seen", format="YYYY-MM-DD HH:mm"),
            "last_seen": st.column_config.DatetimeColumn("Last seen", format="YYYY-MM-DD HH:mm"),
            "tools": st.column_config.TextColumn("Tools"),
            "workflows": st.column_config.TextColumn("Workflows"),
            "models": st.column_config.TextColumn("Models"),
            "versions": st.column_config.TextColumn("Service versions"),
            "cluster_id": st.column_config.TextColumn("Cluster id"),
        },
    )
    selected = event.selection.rows if event is not None else []
    row = found.row(selected[0] if selected else 0, named=True)
    _cluster_detail(ctx, row)


def _cluster_detail(ctx, row: dict) -> None:
    with st.container(border=True):
        st.markdown(f"**{row['label']}**  \n`{row['cluster_id']}`"
                    + (" · :red-badge[new]" if row["is_new"] else ""))
        left, right = st.columns([2, 3])
        with left:
            st.markdown(
                f"{fmt_int(row['count'])} failures · first seen {fmt_time(row['first_seen'])} · "
                f"last seen {fmt_time(row['last_seen'])}"
            )
            examples = [link(t[:16] + "…", traces_url(ctx.filters, trace=t))
                        for t in row["example_trace_ids"]]
            st.markdown("Example traces: " + (" · ".join(examples) or "–"), unsafe_allow_html=True)
            if len(row["member_ids"]) > 1:
                st.caption(f"Groups {len(row['member_ids'])} near-identical failures: "
                           + ", ".join(row["member_ids"]))
        with right:
            trend = pl.DataFrame({"count": row["trend"]}).with_row_index("i").with_columns(
                (pl.lit(row["trend_start"])
                 + pl.duration(seconds=pl.col("i") * _bucket_seconds(row["trend_bucket"])))
                .alias("bucket_start"),
                pl.lit("failures").alias("series"),
            )
            components.plot(charts.stacked_bars(trend, x="bucket_start", y="count", color="series",
                                                height=180), key="rel_cluster_trend")


def _bucket_seconds(text: str) -> int:
    from stepscope.timeparse import parse_duration

    return int(parse_duration(text).total_seconds())


def recent_filters(ctx) -> tuple[Filters, Filters]:
    """The last hour before `now`, and the 24 hours before it, with the sidebar's filters."""
    base = ctx.filters.with_values(range="1h")
    now = ctx.now
    return (data.to_analytics_filters(base, now - RECENT, now),
            data.to_analytics_filters(base, now - RECENT - RECENT_BASELINE, now - RECENT))


def load(ctx) -> data.Frames:
    """Every frame the page shows for the selected filters (cached by `data.call`)."""
    filters = ctx.analytics_filters
    bucket = periods.bucket_for(ctx.window)
    recent, before = recent_filters(ctx)
    return data.Frames({
        "total": lambda: data.call(ctx.source, "kpis", filters, by=()),
        "previous": lambda: data.call(ctx.source, "kpis", ctx.shifted(-ctx.window.duration), by=()),
        "series": lambda: data.call(ctx.source, "kpi_series", filters, bucket=bucket, by=("workflow",)),
        "overall": lambda: data.call(ctx.source, "kpi_series", filters, bucket=bucket, by=()),
        "markers": lambda: data.release_marker_lines(ctx.source, filters),
        "clusters": lambda: data.call(ctx.source, "failure_clusters", filters, now=ctx.now),
        "tools": lambda: data.call(ctx.source, "step_kpis", filters, by=("tool",)),
        "recent": lambda: data.call(ctx.source, "kpis", recent, by=("workflow",)),
        "recent_baseline": lambda: data.call(ctx.source, "kpis", before, by=("workflow",)),
        "recent_clusters": lambda: data.call(
            ctx.source, "failure_clusters", recent, now=ctx.now,
            baseline=periods.window_before(ctx.now - RECENT, RECENT_BASELINE)),
        "recent_releases": lambda: data.release_marker_lines(ctx.source, recent),
    })


def _recent(ctx, frames: dict[str, pl.DataFrame]) -> None:
    st.subheader("What changed in the last hour")
    now = ctx.now
    base = ctx.filters.with_values(range="1h")
    lines = describe_changes(frames["recent"], frames["recent_baseline"], frames["recent_clusters"],
                             frames["recent_releases"], link_for=lambda **p: traces_url(base, **p))
    st.caption(f"{fmt_time(now - RECENT)} → {fmt_time(now)}, against the 24 hours before.")
    if not lines:
        components.empty_state("Nothing notable",
                               "No KPI moved beyond its usual range, no new failure appeared and "
                               "no new version started in the last hour.", icon="😌")
        return
    st.markdown("\n".join(f"- {line}" for line in lines), unsafe_allow_html=True)


def main() -> None:
    ctx = page_context()
    components.page_header("Reliability", "Errors, tools, latency and failures", ctx.filters,
                           periods.window_label(ctx))
    frames = load(ctx)
    frames.compute_all()                    # then the page in one go: see data.Frames
    total, previous = frames["total"], frames["previous"]
    _recent(ctx, frames)
    if total.is_empty() or not total["runs"][0]:
        components.empty_state("No runs in this range",
                               "Nothing matches the selected time range and filters.")
        return
    _cards(ctx, total.row(0, named=True), previous.row(0, named=True) if not previous.is_empty() else {})
    _over_time(frames)
    _clusters(ctx, frames["clusters"])
    _tools(frames["tools"])


if __name__ == "__main__":
    main()
