"""Plotly figures of the dashboard, built from polars DataFrames.

One look for every chart (font, margins, colours, hover format) so the pages read as one
product; builders take column names rather than assuming a query's shape, and return
a figure without showing it, so they can be tested without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

FONT = "Inter, -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, sans-serif"
PALETTE = (
    "#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#06b6d4", "#ec4899",
    "#84cc16", "#64748b", "#f97316", "#14b8a6", "#a855f7",
)
GOOD, BAD, NEUTRAL, MUTED = "#16a34a", "#dc2626", "#64748b", "#94a3b8"
BASELINE_COLOR, CURRENT_COLOR = "#94a3b8", "#2563eb"
STEP_KIND_COLORS = {
    "workflow": "#334155", "agent": "#475569", "llm": "#2563eb", "embedding": "#0ea5e9",
    "tool": "#f59e0b", "retrieval": "#10b981", "guardrail": "#8b5cf6", "evaluator": "#ec4899",
    "other": "#94a3b8",
}
TOKEN_PARTS = (
    ("uncached_input_tokens", "Input (uncached)", "#2563eb"),
    ("cached_input_tokens", "Input (cached)", "#93c5fd"),
    ("output_tokens", "Output", "#f59e0b"),
)
DEFAULT_HEIGHT = 320

#: A small template of our own. Plotly copies a figure's template into every new figure,
#: and its stock templates are large enough that the copying dominated page render time.
#: Axes have fixed margins (LEFT_MARGIN, BOTTOM_MARGIN) rather than Plotly's automargin,
#: which lays a chart out again after measuring its tick labels: a time series drew in
#: 40-46 ms with it and 16-17 ms without, in the browser of every page view. Only axes
#: of names (models, tools, a trace's steps) keep automargin.
TEMPLATE = go.layout.Template(layout={
    "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "colorway": list(PALETTE),
    "font": {"family": FONT, "size": 12, "color": "#1f2937"},
    "xaxis": {"gridcolor": "#f1f5f9", "linecolor": "#e5e7eb", "zerolinecolor": "#e5e7eb"},
    "yaxis": {"gridcolor": "#f1f5f9", "linecolor": "#e5e7eb", "zerolinecolor": "#e5e7eb"},
    "hoverlabel": {"font": {"family": FONT}},
})
#: Room for y tick labels such as "12k", "99.5%" or "$0.015" (Plotly abbreviates large
#: numbers), and for a date axis's two-line labels ("Oct 27" over "2026").
LEFT_MARGIN, BOTTOM_MARGIN = 56, 40
#: Width of one tick-label character at the charts' 12 px font, with room to spare.
CHAR_PX = 7
#: Room a rotated y-axis title takes.
Y_TITLE_PX = 20


def new_figure() -> go.Figure:
    """An empty figure on the dashboard's template (never the stock default)."""
    return go.Figure(layout={"template": TEMPLATE})


def base_layout(fig: go.Figure, *, height: int = DEFAULT_HEIGHT, title: str | None = None,
                y_title: str | None = None, legend: bool = True,
                left: int = LEFT_MARGIN) -> go.Figure:
    """The shared look: white background, light grid, legend on top, fixed margins
    (`left` fits the y tick labels)."""
    fig.update_layout(
        height=height,
        margin={"l": left + (Y_TITLE_PX if y_title else 0), "r": 8, "t": 76 if title else 16,
                "b": BOTTOM_MARGIN},
        font={"family": FONT, "size": 12, "color": "#1f2937"},
        title={"text": title, "font": {"size": 14}, "x": 0, "xanchor": "left", "xref": "paper",
               "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 10}} if title else None,
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0,
                "title": {"text": ""}},
        hovermode="x unified",
        colorway=list(PALETTE),
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_xaxes(showgrid=False, linecolor="#e5e7eb", ticks="outside", tickcolor="#e5e7eb")
    fig.update_yaxes(gridcolor="#f1f5f9", zeroline=False, title_text=y_title)
    return fig


def money_margin(top: float | None) -> int:
    """A left margin that fits whole-dollar tick labels ("$1,234,567") up to `top`."""
    text = f"${top:,.0f}" if top is not None and math.isfinite(top) else "$0"
    return max(LEFT_MARGIN, CHAR_PX * len(text) + 16)


def empty_figure(message: str, height: int = 200) -> go.Figure:
    """A chart-shaped note, for a series with nothing to draw."""
    fig = new_figure()
    fig.add_annotation(text=message, showarrow=False, font={"color": MUTED, "size": 13},
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height=height, legend=False)


def add_release_markers(fig: go.Figure, markers: pl.DataFrame | None, *, time_col: str = "time",
                        label_col: str = "label") -> go.Figure:
    """Dashed vertical lines where a new service version first appeared, labelled on top."""
    if markers is None or markers.is_empty():
        return fig
    for row in markers.select(time_col, label_col).iter_rows():
        when, label = row
        fig.add_vline(x=when, line={"dash": "dot", "color": "#7c3aed", "width": 1})
        fig.add_annotation(x=when, y=0.98, yref="paper", text=str(label), showarrow=False,
                           xanchor="left", yanchor="top", xshift=3,
                           font={"size": 10, "color": "#7c3aed"}, bgcolor="rgba(255,255,255,0.85)")
    return fig


def line_chart(df: pl.DataFrame, *, x: str, y: str, color: str | None = None,
               title: str | None = None, y_title: str | None = None, y_format: str = ",.2f",
               percent: bool = False, markers: pl.DataFrame | None = None,
               height: int = DEFAULT_HEIGHT) -> go.Figure:
    """One line per value of `color` (or a single line) over time, with release markers."""
    df = df.drop_nulls(x).sort(x)
    fig = new_figure()
    groups = [(None, df)] if color is None else _groups(df, color)
    for i, (name, part) in enumerate(groups):
        fig.add_trace(go.Scatter(
            x=part[x].to_list(), y=part[y].to_list(), name=str(name) if name is not None else y,
            mode="lines+markers" if part.height < 40 else "lines",
            line={"width": 2, "color": PALETTE[i % len(PALETTE)]}, marker={"size": 5},
            connectgaps=False,
            hovertemplate=f"%{{y:{'.1%' if percent else y_format}}}<extra>%{{fullData.name}}</extra>",
        ))
    base_layout(fig, title=title, y_title=y_title, height=height, legend=color is not None)
    if percent:
        top = df[y].max() if df.height else None
        fig.update_yaxes(tickformat=".1%" if isinstance(top, float) and top < 0.1 else ".0%")
    elif y_format.startswith("$"):
        fig.update_yaxes(tickprefix="$")
    return add_release_markers(fig, markers)


def stacked_bars(df: pl.DataFrame, *, x: str, y: str, color: str, title: str | None = None,
                 y_title: str | None = None, money: bool = False, max_groups: int = 10,
                 height: int = DEFAULT_HEIGHT) -> go.Figure:
    """Bars stacked by `color` over `x`; beyond `max_groups` the smallest are summed as "other"."""
    df = fold_small_groups(df, key=color, value=y, keep=max_groups)
    fig = new_figure()
    for i, (name, part) in enumerate(_groups(df, color, order_by=y)):
        part = part.sort(x)
        fig.add_trace(go.Bar(
            x=part[x].to_list(), y=part[y].to_list(), name=str(name),
            marker_color=MUTED if name == "other" else PALETTE[i % len(PALETTE)],
            hovertemplate=("$%{y:,.2f}" if money else "%{y:,}") + "<extra>%{fullData.name}</extra>",
        ))
    tallest = df.group_by(x).agg(pl.col(y).sum())[y].max() if df.height else None
    base_layout(fig, title=title, y_title=y_title, height=height,
                left=money_margin(tallest) if money else LEFT_MARGIN)
    fig.update_layout(barmode="stack", bargap=0.15)
    if money:
        fig.update_yaxes(tickprefix="$", tickformat=",.0f")
    return fig


def token_mix(df: pl.DataFrame, *, label: str, title: str | None = None,
              height: int = DEFAULT_HEIGHT) -> go.Figure:
    """Horizontal 100% bars: uncached input, cached input and output tokens per `label`."""
    fig = new_figure()
    if df.is_empty():
        return empty_figure("No token counts in this range")
    df = df.sort("total_tokens")
    for column, name, colour in TOKEN_PARTS:
        share = (df[column] / df["total_tokens"]).fill_nan(None)
        fig.add_trace(go.Bar(
            y=df[label].to_list(), x=share.to_list(), name=name, orientation="h",
            marker_color=colour, customdata=df[column].to_list(),
            hovertemplate="%{x:.1%} (%{customdata:,} tokens)<extra>" + name + "</extra>",
        ))
    base_layout(fig, title=title, height=max(height, 60 + 34 * df.height))
    fig.update_layout(barmode="stack", hovermode="y unified", legend_traceorder="normal")
    fig.update_xaxes(tickformat=".0%", range=[0, 1], showgrid=True, gridcolor="#f1f5f9")
    fig.update_yaxes(automargin=True)                    # workflow names
    return fig


def budget_burn(daily: pl.DataFrame, *, day: str, cost: str, budget: float | None,
                month_end: datetime, projection: float | None,
                title: str | None = None, height: int = DEFAULT_HEIGHT) -> go.Figure:
    """Cumulative spend this month, its straight-line projection to month end, the budget."""
    daily = daily.sort(day).with_columns(pl.col(cost).fill_null(0).cum_sum().alias("_cum"))
    fig = new_figure()
    fig.add_trace(go.Scatter(
        x=daily[day].to_list(), y=daily["_cum"].to_list(), name="Spend to date",
        mode="lines+markers", line={"color": PALETTE[0], "width": 2.5}, fill="tozeroy",
        fillcolor="rgba(37,99,235,0.08)", hovertemplate="$%{y:,.2f}<extra>to date</extra>",
    ))
    if projection is not None and daily.height:
        last_day, last_total = daily[day][-1], daily["_cum"][-1]
        over = budget is not None and projection > budget
        fig.add_trace(go.Scatter(
            x=[last_day, month_end], y=[last_total, projection], name="Projection",
            mode="lines+markers", line={"dash": "dash", "color": BAD if over else NEUTRAL},
            hovertemplate="$%{y:,.2f}<extra>projected</extra>",
        ))
    if budget is not None:
        fig.add_hline(y=budget, line={"color": BAD, "width": 1.5},
                      annotation_text=f"Budget ${budget:,.0f}", annotation_position="top left",
                      annotation_font={"color": BAD, "size": 11})
    highest = max([v for v in (daily["_cum"].max() if daily.height else None, projection, budget)
                   if v is not None], default=None)
    base_layout(fig, title=title, height=height, left=money_margin(highest))
    fig.update_yaxes(tickprefix="$", tickformat=",.0f", rangemode="tozero")
    return fig


def waterfall(steps: pl.DataFrame, *, height_per_step: int = 26) -> go.Figure:
    """A trace's steps as a Gantt chart: offset from the run's start, duration, kind, status.

    Expects `label`, `offset_ms`, `duration_ms`, `step_kind`, `status_code` and `detail`
    (hover text) columns, one row per step in display order.
    """
    if steps.is_empty():
        return empty_figure("This trace has no steps in the store")
    fig = new_figure()
    labels = steps["label"].to_list()
    for kind in dict.fromkeys(steps["step_kind"].fill_null("other").to_list()):
        part = steps.filter(pl.col("step_kind").fill_null("other") == kind)
        errors = (part["status_code"] == "error").fill_null(False).to_list()
        fig.add_trace(go.Bar(
            y=part["label"].to_list(), x=part["duration_ms"].fill_null(0).to_list(),
            base=part["offset_ms"].to_list(), orientation="h", name=kind,
            marker={"color": STEP_KIND_COLORS.get(kind, MUTED),
                    "line": {"color": [BAD if e else "rgba(0,0,0,0)" for e in errors], "width": 2}},
            customdata=part["detail"].to_list(), hovertemplate="%{customdata}<extra></extra>",
        ))
    base_layout(fig, height=max(160, 70 + height_per_step * len(labels)))
    fig.update_layout(barmode="overlay", hovermode="closest", bargap=0.25)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(labels)), automargin=True,
                     showgrid=False)
    fig.update_xaxes(title_text="milliseconds since the run started", automargin=True, showgrid=True,
                     gridcolor="#f1f5f9", rangemode="tozero")
    return fig


SEVERITY_COLORS = {"critical": BAD, "warning": "#f59e0b", "info": PALETTE[0]}


def alert_timeline(intervals: pl.DataFrame, height_per_row: int = 28) -> go.Figure:
    """When each alert was firing: one row per rule and scope, a bar per firing interval.

    Expects `rule`, `scope`, `severity`, `start` and `end` (UTC datetimes).
    """
    frame = intervals.with_columns(
        pl.concat_str([pl.col("rule"), pl.col("scope")], separator=" · ").alias("label"),
        ((pl.col("end") - pl.col("start")).dt.total_milliseconds()).alias("ms"),
    )
    fig = new_figure()
    for severity in dict.fromkeys(frame["severity"].fill_null("info").to_list()):
        part = frame.filter(pl.col("severity").fill_null("info") == severity)
        fig.add_trace(go.Bar(
            y=part["label"].to_list(), x=part["ms"].to_list(), base=part["start"].to_list(),
            orientation="h", name=severity, marker_color=SEVERITY_COLORS.get(severity, MUTED),
            customdata=list(zip(part["start"].to_list(), part["end"].to_list(), strict=True)),
            hovertemplate="%{y}<br>%{customdata[0]|%Y-%m-%d %H:%M} → %{customdata[1]|%H:%M}"
                          "<extra>%{fullData.name}</extra>",
        ))
    rows = frame["label"].n_unique()
    base_layout(fig, height=max(140, 70 + height_per_row * rows))
    fig.update_layout(barmode="overlay", hovermode="closest")
    fig.update_xaxes(type="date", showgrid=True, gridcolor="#f1f5f9")
    fig.update_yaxes(automargin=True, showgrid=False)
    return fig


def distribution_pair(bins: pl.DataFrame, *, title: str, unit: str = "", height: int = 280
                      ) -> go.Figure:
    """Baseline and current histograms side by side on the same bins and axes.

    Expects `side` (baseline, current), `bin_start`, `bin_end`, `count` and `share`.
    """
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, shared_yaxes=True, figure=new_figure(),
                        subplot_titles=("Baseline", "Current"), horizontal_spacing=0.04)
    for col, (side, colour) in enumerate((("baseline", BASELINE_COLOR), ("current", CURRENT_COLOR)), 1):
        part = bins.filter(pl.col("side") == side).sort("bin_start")
        centres = ((part["bin_start"] + part["bin_end"]) / 2).to_list()
        fig.add_trace(go.Bar(
            x=centres, y=part["share"].to_list(), width=(part["bin_end"] - part["bin_start"]).to_list(),
            marker_color=colour, name=side.capitalize(), customdata=part["count"].to_list(),
            hovertemplate="%{x:,.4g}: %{y:.1%} (%{customdata:,} values)<extra></extra>",
        ), row=1, col=col)
    base_layout(fig, title=title, height=height, legend=False)
    fig.update_layout(hovermode="closest", bargap=0.02)
    fig.update_yaxes(tickformat=".0%")
    fig.update_xaxes(title_text=unit or None, automargin=True)
    return fig


def category_pair(categories: Sequence[str], baseline: Sequence[float], current: Sequence[float], *,
                  title: str, percent: bool = True, height: int = 260) -> go.Figure:
    """Shares (or rates) of a mix in the baseline and current windows, as grouped bars."""
    fig = new_figure()
    fmt = ".1%" if percent else ",.3g"
    for name, values, colour in (("Baseline", baseline, BASELINE_COLOR),
                                 ("Current", current, CURRENT_COLOR)):
        fig.add_trace(go.Bar(x=list(categories), y=list(values), name=name, marker_color=colour,
                             hovertemplate=f"%{{y:{fmt}}}<extra>{name}</extra>"))
    base_layout(fig, title=title, height=height)
    fig.update_layout(barmode="group", hovermode="x unified")
    fig.update_xaxes(automargin=True)                    # category names
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def fold_small_groups(df: pl.DataFrame, *, key: str, value: str, keep: int) -> pl.DataFrame:
    """Keep the `keep` largest values of `key` by total `value`; sum the rest as "other"."""
    totals = df.group_by(key).agg(pl.col(value).sum()).sort(value, descending=True, nulls_last=True)
    if totals.height <= keep:
        return df
    top = totals[key].head(keep - 1).to_list()
    others = [c for c in df.columns if c not in (key, value)]
    return (
        df.with_columns(pl.when(pl.col(key).is_in(top)).then(pl.col(key)).otherwise(pl.lit("other"))
                        .alias(key))
        .group_by([key, *others]).agg(pl.col(value).sum())
    )


def _groups(df: pl.DataFrame, key: str, order_by: str | None = None) -> list[tuple[object, pl.DataFrame]]:
    """Sub-frames per value of `key`, largest total of `order_by` first (else by name)."""
    if order_by is not None:
        order = (df.group_by(key).agg(pl.col(order_by).sum())
                 .sort(order_by, descending=True, nulls_last=True)[key].to_list())
    else:
        order = sorted(df[key].unique().to_list(), key=lambda v: (v is None, str(v)))
    return [(name, df.filter(pl.col(key).eq_missing(name))) for name in order]
