"""Cost, for finance: spend by model, workflow and tenant, per completed task, vs budget."""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from stepscope.analytics.filters import Filters
from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import fmt_int, fmt_tokens, fmt_usd, link, traces_url
from stepscope.dashboard.context import page_context
from stepscope.output import render_csv

SPLITS = {"Model": "model", "Workflow": "workflow", "Tenant": "tenant"}


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as the CSV every command writes (ISO timestamps, empty for null)."""
    return render_csv(frame.to_dicts()).encode("utf-8")


def download(frame: pl.DataFrame, name: str, key: str) -> None:
    st.download_button("Download CSV", csv_bytes(frame), file_name=f"{name}.csv", mime="text/csv",
                       key=key, icon=":material/download:", type="tertiary")


def spend_by(ctx, split: str) -> pl.DataFrame:
    """Spend per time bucket and `split` value, with calls, tokens and price sources."""
    return data.call(ctx.source, "cost_breakdown", ctx.analytics_filters, by=split,
                     bucket=periods.bucket_for(ctx.window))


def model_totals(by_model: pl.DataFrame) -> pl.DataFrame:
    """Per-model totals over the range, from the per-bucket breakdown (one query, not two)."""
    if by_model.is_empty():
        return by_model.drop("bucket_start")
    sums = ["llm_calls", "embedding_calls", "input_tokens", "cached_input_tokens",
            "cache_write_tokens", "output_tokens", "unpriced_calls"]
    return by_model.group_by("model").agg(
        *(pl.col(c).sum() for c in sums),
        # null when no call of the model could be priced: unknown, never $0
        pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum())
        .alias("cost_usd"),
        pl.when(pl.col("reported_cost_usd").is_not_null().any())
        .then(pl.col("reported_cost_usd").sum()).alias("reported_cost_usd"),
        pl.when(pl.col("reported_minus_ours_usd").is_not_null().any())
        .then(pl.col("reported_minus_ours_usd").sum()).alias("reported_minus_ours_usd"),
        pl.col("price_sources").drop_nulls().str.split("; ").list.explode().unique().sort()
        .str.join("; ").alias("price_sources"),
    ).with_columns(pl.when(pl.col("price_sources") == "").then(None)
                   .otherwise(pl.col("price_sources")).alias("price_sources"))


def load(ctx, split: str = "model") -> data.Frames:
    """Every frame the page shows for the selected filters and spend split."""
    filters = ctx.analytics_filters
    by_model = functools.cache(lambda: spend_by(ctx, "model"))
    month_start, month_end = month_window(ctx.now - timedelta(microseconds=1))
    month = Filters(since=month_start, until=min(ctx.now, month_end))
    return data.Frames({
        "total": lambda: data.call(ctx.source, "kpis", filters, by=()),
        "previous": lambda: data.call(ctx.source, "kpis", ctx.shifted(-ctx.window.duration),
                                      by=()),
        "models": lambda: model_totals(by_model()),
        "spend": lambda: by_model() if split == "model" else spend_by(ctx, split),
        "series": lambda: data.call(ctx.source, "kpi_series", filters,
                                    bucket=periods.bucket_for(ctx.window), by=("workflow",)),
        "by_workflow": lambda: data.call(ctx.source, "kpis", filters, by=("workflow",)),
        "markers": lambda: data.release_marker_lines(ctx.source, filters),
        "top": lambda: data.call(ctx.source, "top_cost_traces", filters, limit=10),
        "month_daily": lambda: data.call(ctx.source, "kpi_series", month, bucket="day", by=()),
        "month_by_workflow": lambda: data.call(ctx.source, "kpis", month, by=("workflow",)),
    })


def month_window(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    return start, start + timedelta(days=days)


def projection(spent: float, month_start: datetime, month_end: datetime, now: datetime) -> float:
    """Month-end spend if the rest of the month runs at this month's average rate so far."""
    elapsed = (now - month_start).total_seconds()
    total = (month_end - month_start).total_seconds()
    if elapsed <= 0:
        return spent
    return spent * total / elapsed


def _budget_section(ctx, frames: dict[str, pl.DataFrame]) -> None:
    st.subheader("Budget")
    budgets = ctx.config.budgets
    month_start, month_end = month_window(ctx.now - timedelta(microseconds=1))
    until = min(ctx.now, month_end)
    daily = frames["month_daily"]
    spent = float(daily["cost_usd"].fill_null(0).sum()) if not daily.is_empty() else 0.0
    projected = projection(spent, month_start, month_end, until)
    left, right = st.columns([3, 2])
    with left:
        if daily.is_empty():
            components.empty_state("No spend this month yet",
                                   f"Nothing was priced since {month_start:%Y-%m-%d}.")
        else:
            components.plot(charts.budget_burn(
                daily, day="bucket_start", cost="cost_usd", budget=budgets.monthly_usd,
                month_end=month_end, projection=projected,
                title=f"{month_start:%B %Y}: spend to date and projection (all workflows)",
            ), key="cost_budget_chart")
    with right:
        first, second = st.columns(2)
        first.metric("Month to date", fmt_usd(spent), border=True,
                     help="All workflows and tenants, whatever the filters.")
        second.metric("Month-end forecast", fmt_usd(projected), border=True,
                      help="Month to date divided by the share of the month elapsed.")
        if budgets.monthly_usd:
            share = projected / budgets.monthly_usd
            st.metric("Monthly budget", fmt_usd(budgets.monthly_usd),
                      f"projected {share:.0%} of budget", border=True,
                      delta_color="inverse" if share > 1 else "off")
            if share > 1:
                st.error(f"At this rate the month ends {fmt_usd(projected - budgets.monthly_usd)} "
                         "over budget.", icon=":material/warning:")
        else:
            st.info("No monthly budget is set. Add `[budgets] monthly_usd = ...` to "
                    "stepscope.toml to track spend against it.", icon=":material/info:")
        _workflow_budgets(ctx, frames["month_by_workflow"], month_start, month_end, until)


def _workflow_budgets(ctx, spent: pl.DataFrame, month_start, month_end, until) -> None:
    budgets = {name: b.monthly_usd for name, b in ctx.config.budgets.workflows.items() if b.monthly_usd}
    if not budgets:
        return
    by_name = {row["workflow"]: row["cost_usd"] or 0.0 for row in spent.to_dicts()}
    rows = []
    for name, budget in sorted(budgets.items()):
        to_date = by_name.get(name, 0.0)
        proj = projection(to_date, month_start, month_end, until)
        colour = components.BAD if proj > budget else components.GOOD
        rows.append([name, fmt_usd(to_date), fmt_usd(budget),
                     f'<span style="color:{colour}">{fmt_usd(proj)}</span>'])
    components.html_table(["Workflow", "Month to date", "Budget", "Projected"], rows)


def _models_section(ctx, models: pl.DataFrame) -> None:
    st.subheader("Models and price sources")
    if models.is_empty():
        components.empty_state("No model calls", "No chat or embedding calls in this selection.")
        return
    shown = models.select(
        pl.col("model").fill_null("(no model name)"),
        (pl.col("llm_calls") + pl.col("embedding_calls")).alias("calls"),
        "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd", "unpriced_calls",
        "price_sources", "reported_cost_usd", "reported_minus_ours_usd",
    ).sort("cost_usd", descending=True, nulls_last=True)
    if shown["reported_cost_usd"].null_count() == shown.height:
        # no span reported a cost of its own: nothing to compare ours with
        shown = shown.drop("reported_cost_usd", "reported_minus_ours_usd")
    st.dataframe(
        shown, hide_index=True, width="stretch", placeholder="–",
        column_config={
            "model": st.column_config.TextColumn("Model", pinned=True),
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "input_tokens": st.column_config.NumberColumn("Input tokens", format="compact"),
            "cached_input_tokens": st.column_config.NumberColumn("Cached input", format="compact"),
            "output_tokens": st.column_config.NumberColumn("Output tokens", format="compact"),
            "cost_usd": st.column_config.NumberColumn("Cost", format="dollar",
                                                      help="Empty when no call could be priced"),
            "unpriced_calls": st.column_config.NumberColumn("Unpriced calls", format="localized"),
            "reported_cost_usd": st.column_config.NumberColumn(
                "Reported by spans", format="dollar",
                help="The cost the spans reported themselves, where they did (never summed into totals)"),
            "reported_minus_ours_usd": st.column_config.NumberColumn(
                "Reported − ours", format="dollar"),
            "price_sources": st.column_config.TextColumn(
                "Price source", width="large",
                help="Where each rate came from: the genai-prices snapshot or a [[prices]] entry"),
        },
    )
    download(shown, "model-costs", "cost_models_csv")


def _unpriced_callout(models: pl.DataFrame) -> None:
    if models.is_empty():
        return
    unpriced = models.filter(pl.col("unpriced_calls") > 0)
    if unpriced.is_empty():
        return
    names = ", ".join(f"**{r['model'] or '(no model name)'}** ({fmt_int(r['unpriced_calls'])} calls)"
                      for r in unpriced.sort("unpriced_calls", descending=True).to_dicts())
    st.warning(
        f"Unpriced models: {names}. Their cost is unknown — it is left out of the totals, not "
        "counted as $0. Add a `[[prices]]` entry to stepscope.toml to price them.",
        icon=":material/price_change:",
    )


def main() -> None:
    ctx = page_context()
    components.page_header("Cost", "Spend, unit cost and budget", ctx.filters,
                           periods.window_label(ctx))
    split_label = st.session_state.get("cost_split") or "Model"
    frames = load(ctx, SPLITS[split_label])
    frames.compute_all()                    # then the page in one go: see data.Frames
    total, models = frames["total"], frames["models"]
    if total.is_empty() or not total["runs"][0]:
        components.empty_state("No runs in this range",
                               "Nothing matches the selected time range and filters.")
        return
    now_row = total.row(0, named=True)
    if models.is_empty():
        components.empty_state(
            "No cost data",
            "These runs made no model calls with token counts, so there is nothing to price. "
            "Spend appears once traces carry model names and token usage "
            "(gen_ai.usage.* attributes).",
            icon="💸",
        )
        return
    _unpriced_callout(models)
    previous = frames["previous"]
    before = previous.row(0, named=True) if not previous.is_empty() else {}
    cards = st.columns(4)
    for column, (key, label) in zip(cards, (
        ("cost_usd", "Spend"), ("cost_per_completed_task_usd", "Cost / completed task"),
        ("cost_per_run_usd", "Cost / run"), ("unpriced_llm_calls", "Unpriced calls"),
    ), strict=True):
        value = now_row.get(key)
        change = components.relative_change(value, before.get(key))
        column.metric(
            label, fmt_int(value) if key == "unpriced_llm_calls" else fmt_usd(value),
            None if change is None else f"{change * 100:+.1f}%", delta_color="inverse", border=True,
            delta_description=periods.short_comparison(ctx.window),
        )

    st.subheader("Spend over time")
    st.segmented_control("Split by", list(SPLITS), default="Model", key="cost_split")
    split = SPLITS[split_label]
    spend = frames["spend"]
    if spend.is_empty() or spend["cost_usd"].fill_null(0).sum() == 0:
        components.empty_state("Nothing priced in this range",
                               "The model calls here have no price; see the unpriced models above.")
    else:
        components.plot(charts.stacked_bars(
            spend.with_columns(pl.col(split).fill_null("(none)")), x="bucket_start", y="cost_usd",
            color=split, money=True, height=340,
        ), key="cost_spend_chart")
        download(spend, f"spend-by-{split}", "cost_spend_csv")

    left, right = st.columns(2)
    with left:
        st.subheader("Cost per completed task")
        components.plot(charts.line_chart(
            frames["series"], x="bucket_start", y="cost_per_completed_task_usd", color="workflow",
            y_format="$,.4f", markers=frames["markers"], height=340,
        ), key="cost_per_task_chart")
    with right:
        st.subheader("Token mix")
        mix = frames["by_workflow"].select(
            pl.col("workflow").fill_null("(none)"),
            (pl.col("input_tokens") - pl.col("cached_input_tokens")).alias("uncached_input_tokens"),
            "cached_input_tokens", "output_tokens",
        ).with_columns(
            (pl.col("uncached_input_tokens") + pl.col("cached_input_tokens") + pl.col("output_tokens"))
            .alias("total_tokens")
        ).filter(pl.col("total_tokens") > 0)
        components.plot(charts.token_mix(mix, label="workflow", height=340), key="cost_mix_chart")
        if not mix.is_empty():
            cached = mix["cached_input_tokens"].sum() / max(1, mix["total_tokens"].sum())
            st.caption(f"{fmt_tokens(mix['total_tokens'].sum())} tokens; {cached:.1%} were "
                       "input read from the provider's cache.")

    _top_traces(ctx, frames["top"])
    _models_section(ctx, models)
    _budget_section(ctx, frames)


def _top_traces(ctx, top: pl.DataFrame) -> None:
    st.subheader("Most expensive runs")
    if top.is_empty():
        components.empty_state("No priced runs", "No run in this selection has a priced model call.")
        return
    rows = [[link(r["trace_id"][:16] + "…", traces_url(ctx.filters, trace=r["trace_id"])),
             r.get("workflow") or "–", r.get("tenant_id") or "–", fmt_usd(r.get("cost_usd")),
             components.fmt_ms(r.get("latency_ms")), r.get("outcome") or "–",
             components.fmt_time(r.get("run_start"))]
            for r in top.to_dicts()]
    components.html_table(["Trace", "Workflow", "Tenant", "Cost", "Latency", "Outcome", "Started"],
                          rows)
    download(top, "top-cost-traces", "cost_top_csv")


if __name__ == "__main__":
    main()
