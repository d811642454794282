"""Drift: what changed between a baseline and a current window, with the evidence.

The two sides are chosen here and kept in the URL (`baseline`, `current`) in the
spelling `stepscope drift --baseline ... --current ...` accepts, so a finding can be
reproduced on the command line.
"""

from __future__ import annotations

import functools
import html

import polars as pl
import streamlit as st

from stepscope.analytics.dashboard_queries import DISTRIBUTION_METRICS
from stepscope.analytics.drift import METRIC_BY_NAME, Side, parse_side, resolve_sides
from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import fmt_time, link, traces_url, window_range
from stepscope.dashboard.context import page_context
from stepscope.timeparse import TimeSpecError

MODES = {
    "default": "Last 24 hours vs the 7 days before",
    "range": "Selected range vs the 7 days before it",
    "versions": "Service version vs service version",
}
SEVERITY_BADGE = {"critical": ":red-badge[critical]", "warning": ":orange-badge[warning]",
                  "info": ":blue-badge[info]"}
METRIC_TITLES = {
    "run_latency_ms": ("Run latency", "ms"),
    "steps_per_run": ("Steps per run", ""),
    "cost_per_run_usd": ("Cost per run", "usd"),
    "run_error_rate": ("Runs with a failed step", "rate"),
    "tool_call_mix": ("Tool-call mix", "mix"),
    "step_latency_ms": ("Model-call latency", "ms"),
    "input_tokens_per_call": ("Input tokens per call", "tokens"),
    "output_tokens_per_call": ("Output tokens per call", "tokens"),
    "length_finish_rate": ("Calls cut at the token limit", "rate"),
    "llm_error_rate": ("Model-call error rate", "rate"),
    "responded_model_version": ("Responded model version", "mix"),
}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return components.fmt_ms(value)
    if unit == "usd":
        return components.fmt_usd(value, 4)
    if unit == "rate":
        return components.fmt_pct(value, 2)
    return f"{value:,.1f}"


def choose_sides(ctx) -> tuple[Side, Side] | None:
    """The comparison the controls (or the URL) select."""
    params = st.query_params
    if "baseline" in params and "current" in params and "drift_mode" not in st.session_state:
        try:
            return parse_side(params["baseline"], ctx.now), parse_side(params["current"], ctx.now)
        except TimeSpecError as exc:
            st.error(f"Cannot read the comparison in the URL: {exc}")
    mode = st.segmented_control("Compare", list(MODES), format_func=MODES.get, default="default",
                                key="drift_mode") or "default"
    if mode == "default":
        return resolve_sides(None, None, ctx.now)
    if mode == "range":
        return resolve_sides(None, Side(window=ctx.window), ctx.now)
    versions = data.dimension_values(ctx.source, ctx.analytics_filters.with_window(None, None)
                                     ).get("service_versions", [])
    if len(versions) < 2:
        st.info("Comparing versions needs at least two service versions in the store.")
        return None
    left, right = st.columns(2)
    base = left.selectbox("Baseline version", versions, index=1, key="drift_base_version")
    current_version = right.selectbox("Current version", versions, index=0,
                                      key="drift_current_version")
    return Side(service_version=base), Side(service_version=current_version)


def side_text(side: Side) -> str:
    if side.service_version:
        return f"service_version={side.service_version}"
    return window_range(side.window.start, side.window.end)


UNIT_AXIS = {"ms": "milliseconds", "usd": "USD", "tokens": "tokens", "": ""}
#: Histograms take a query each on a large store: the first findings get them, the rest
#: show their summaries (median, mean, p95) side by side.
HISTOGRAMS_SHOWN = 6


def distribution_keys(findings: pl.DataFrame) -> list[tuple[str, str, str | None]]:
    """(metric, workflow, model) of the first findings whose samples are drawn as histograms."""
    keys = []
    for row in findings.select("metric", "workflow", "model").to_dicts():
        if row["metric"] in DISTRIBUTION_METRICS and row["workflow"]:
            keys.append((row["metric"], row["workflow"], row["model"]))
    return keys[:HISTOGRAMS_SHOWN]


def _evidence(ctx, row: dict, bins: pl.DataFrame | None, key: str) -> None:
    """Baseline and current side by side: histograms of a continuous metric, shares of a
    mix, or the two rates."""
    title, unit = METRIC_TITLES.get(row["metric"], (row["metric"], ""))
    base, current = row["baseline"], row["current"]
    if unit == "mix":
        shares = {s["value"]: [s["share"], 0.0] for s in base["shares"] or []}
        for s in current["shares"] or []:
            shares.setdefault(s["value"], [0.0, 0.0])[1] = s["share"]
        names = sorted(shares, key=lambda v: -max(shares[v]))
        fig = charts.category_pair(names, [shares[n][0] for n in names], [shares[n][1] for n in names],
                                   title=f"{title}: share of calls")
    elif unit == "rate":
        fig = charts.category_pair([title], [base["rate"] or 0.0], [current["rate"] or 0.0],
                                   title=f"{title} (n = {base['n']:,} vs {current['n']:,})")
    elif bins is None or bins.is_empty():
        stats = ["median", "mean", "p95"]
        fig = charts.category_pair(
            stats, [base[s] for s in stats], [current[s] for s in stats], percent=False,
            title=f"{title} (n = {base['n']:,} vs {current['n']:,})")
    else:
        fig = charts.distribution_pair(
            bins, unit=UNIT_AXIS.get(unit, ""),
            title=f"{title}: distribution (n = {base['n']:,} vs {current['n']:,})")
    components.plot(fig, key=key)


def _headline(row: dict) -> str:
    _, unit = METRIC_TITLES.get(row["metric"], (row["metric"], ""))
    base, current = row["baseline"], row["current"]
    if unit == "mix":
        top_b = (base["shares"] or [{"value": "–", "share": 0}])[0]
        top_c = (current["shares"] or [{"value": "–", "share": 0}])[0]
        return (f"most common {top_b['value']} ({top_b['share']:.0%}) → {top_c['value']} "
                f"({top_c['share']:.0%}); Jensen-Shannon distance {row['effect_size']:.2f}")
    if unit == "rate":
        return (f"{format_value(base['rate'], unit)} → {format_value(current['rate'], unit)} "
                f"(×{row['effect_size']:.2f})")
    stat = base.get("statistic") or "median"
    return (f"{stat} {format_value(base.get(stat), unit)} → {format_value(current.get(stat), unit)}, "
            f"p95 {format_value(base['p95'], unit)} → {format_value(current['p95'], unit)} "
            f"(×{row['effect_size']:.2f})")


def _finding(ctx, row: dict, index: int, sides: tuple[Side, Side],
             histograms: dict[tuple[str, str, str | None], pl.DataFrame]) -> None:
    current = sides[1]
    title, _ = METRIC_TITLES.get(row["metric"], (row["metric"], ""))
    scope = " · ".join(v for v in (row["workflow"], row["model"]) if v)
    with st.container(border=True):
        text, chart = st.columns([2, 3])
        with text:
            st.markdown(f"{SEVERITY_BADGE.get(row['severity'], row['severity'])} **{title}**  \n{scope}")
            st.markdown(html.escape(_headline(row)))
            if row["likely_cause"]:
                st.markdown(f":material/lightbulb: Likely cause: **{html.escape(row['likely_cause'])}**")
            description = METRIC_BY_NAME[row["metric"]].description if row["metric"] in METRIC_BY_NAME else ""
            st.caption(" · ".join(m for m in (description, f"p = {row['p_value']:.2g} (Holm-adjusted)") if m))
            scoped = ctx.filters
            if row["workflow"]:
                scoped = scoped.with_values(workflows=(row["workflow"],))
            if current.window is not None:
                scoped = scoped.with_values(range=window_range(current.window.start, current.window.end))
            if current.service_version:
                scoped = scoped.with_values(service_versions=(current.service_version,))
            st.markdown(link("Current runs in the Trace explorer →", traces_url(scoped)),
                        unsafe_allow_html=True)
        with chart:
            _evidence(ctx, row, histograms.get((row["metric"], row["workflow"], row["model"])),
                      key=f"drift_evidence_{index}")


def load(ctx, baseline: Side | None = None, current: Side | None = None) -> data.Frames:
    """The findings between two sides (default: the last 24 hours vs the 7 days before),
    narrowed by the sidebar's filters other than time, and the histograms drawn for them."""
    if baseline is None or current is None:
        baseline, current = resolve_sides(None, None, ctx.now)
    filters = ctx.analytics_filters.with_window(None, None)
    findings = functools.cache(lambda: data.call(ctx.source, "drift_findings", baseline, current,
                                                 filters=filters, now=ctx.now))

    def histograms() -> dict[tuple[str, str, str | None], pl.DataFrame]:
        return {
            (metric, workflow, model): data.call(
                ctx.source, "drift_distribution", metric, baseline, current, workflow=workflow,
                model=model, filters=filters)
            for metric, workflow, model in distribution_keys(findings())
        }

    return data.Frames({"findings": findings, "histograms": histograms})


def main() -> None:
    ctx = page_context()
    components.page_header("Drift", "Statistically significant, material changes", ctx.filters,
                           periods.window_label(ctx))
    sides = choose_sides(ctx)
    if sides is None:
        return
    baseline, current = sides
    st.query_params["baseline"] = side_text(baseline)
    st.query_params["current"] = side_text(current)
    st.caption(f"Baseline: {_side_label(baseline)} · Current: {_side_label(current)} · "
               f"CLI: `stepscope drift --baseline {side_text(baseline)} --current {side_text(current)}`")
    frames = load(ctx, baseline, current)
    findings = frames["findings"]
    if findings.is_empty():
        components.empty_state(
            "No drift",
            "Nothing changed beyond chance and beyond a 20% effect between these two sides "
            "(family-wise error rate 1%). A quiet period reports nothing here.", icon="✅",
        )
        return
    counts = findings.group_by("severity").len()
    summary = {r["severity"]: r["len"] for r in counts.to_dicts()}
    cols = st.columns(3)
    for col, severity in zip(cols, ("critical", "warning", "info"), strict=True):
        col.metric(severity.capitalize(), summary.get(severity, 0), border=True)
    for i, row in enumerate(findings.to_dicts()):
        _finding(ctx, row, i, (baseline, current), frames["histograms"])
    _download(findings)


def _side_label(side: Side) -> str:
    if side.service_version and side.window is None:
        return f"service version {side.service_version}"
    text = f"{fmt_time(side.window.start)} → {fmt_time(side.window.end)}"
    return text + (f", version {side.service_version}" if side.service_version else "")


def _download(findings: pl.DataFrame) -> None:
    from stepscope.analytics.drift import finding_records
    from stepscope.output import render_json

    st.download_button("Download findings (JSON)", render_json(finding_records(findings)),
                       file_name="drift-findings.json", mime="application/json",
                       icon=":material/download:", type="tertiary")


if __name__ == "__main__":
    main()
