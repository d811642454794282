"""Trace explorer: find runs, then read one as a waterfall with every step's attributes.

Query keys (besides the global filters): `trace` (the run shown), `q` (a trace id or its
beginning), `outcome`, `errors` (`with` or `without`), `min_cost` (USD), `min_latency`
(seconds), `order`, `session` and `user` (a session's or user's runs in order). Every
other page links here with these, so a number on a chart opens the runs behind it.
"""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

import polars as pl
import streamlit as st

from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import (
    fmt_int,
    fmt_ms,
    fmt_time,
    fmt_tokens,
    fmt_usd,
    link,
    traces_url,
)
from stepscope.dashboard.context import page_context

OUTCOMES = ("any", "completed", "escalated", "failed", "unknown", "running")
ERRORS = {"any": None, "with": True, "without": False}
ORDERS = {"recent": "Newest first", "cost": "Costliest first", "latency": "Slowest first",
          "oldest": "Oldest first"}
LIMIT = 200
OUTCOME_COLOURS = {"completed": "green", "escalated": "orange", "failed": "red",
                   "unknown": "gray", "running": "blue"}
PAGE_KEYS = ("trace", "q", "outcome", "errors", "min_cost", "min_latency", "order", "session",
             "user")


def _param(name: str, default: str | None = None) -> str | None:
    value = st.query_params.get(name)
    return value if value not in (None, "") else default


def _float_param(name: str) -> float | None:
    try:
        value = _param(name)
        return float(value) if value is not None else None
    except ValueError:
        return None


def _url_controls() -> dict[str, Any]:
    """The explorer's filters as the URL states them (invalid values fall back to "any")."""
    outcome, errors, order = _param("outcome"), _param("errors"), _param("order")
    return {
        "tr_q": _param("q", ""),
        "tr_outcome": outcome if outcome in OUTCOMES else "any",
        "tr_errors": errors if errors in ERRORS else "any",
        "tr_min_cost": _float_param("min_cost"),
        "tr_min_latency": _float_param("min_latency"),
        "tr_order": order if order in ORDERS else "recent",
    }


def _search_controls() -> dict[str, Any]:
    """The explorer's own filters: from the URL when it changed (a followed link), else as
    the widgets hold them; written back to the URL after every run."""
    state = st.session_state
    from_url = _url_controls()
    if state.get("_tr_written") != from_url:
        state.update(from_url)
    cols = st.columns([3, 2, 2, 2, 2, 2])
    query = cols[0].text_input("Trace id", key="tr_q", placeholder="id or its first characters")
    outcome = cols[1].selectbox("Outcome", OUTCOMES, key="tr_outcome")
    errors = cols[2].selectbox("Failed steps", list(ERRORS), key="tr_errors",
                               format_func={"any": "any", "with": "with failures",
                                            "without": "without failures"}.get)
    min_cost = cols[3].number_input("Cost at least ($)", min_value=0.0, step=0.01, format="%.4f",
                                    key="tr_min_cost", placeholder="any")
    min_latency = cols[4].number_input("Latency at least (s)", min_value=0.0, step=1.0,
                                       key="tr_min_latency", placeholder="any")
    order = cols[5].selectbox("Order", list(ORDERS), format_func=ORDERS.get, key="tr_order")
    chosen = {"q": query.strip() or None, "outcome": None if outcome == "any" else outcome,
              "errors": None if errors == "any" else errors,
              "min_cost": None if min_cost is None else f"{min_cost:g}",
              "min_latency": None if min_latency is None else f"{min_latency:g}",
              "order": None if order == "recent" else order}
    for key, value in chosen.items():
        if value is None:
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = value
    state["_tr_written"] = _url_controls()
    return chosen


NO_SEARCH = {"q": None, "outcome": None, "errors": None, "min_cost": None, "min_latency": None,
             "order": None}


def load(ctx, chosen: dict[str, Any] | None = None, session: str | None = None,
         user: str | None = None) -> dict[str, pl.DataFrame]:
    """The runs the search selects (a session's or user's runs: all time, oldest first)."""
    chosen = chosen or NO_SEARCH
    filters = ctx.analytics_filters
    if session or user:
        filters = filters.with_window(None, None)
        if user:
            filters = replace(filters, users=(user,))
    return data.Frames({
        "found": lambda: data.call(
            ctx.source, "find_traces", filters,
            outcome=chosen["outcome"], with_errors=ERRORS[chosen["errors"] or "any"],
            min_cost_usd=float(chosen["min_cost"]) if chosen["min_cost"] else None,
            min_latency_ms=float(chosen["min_latency"]) * 1000 if chosen["min_latency"] else None,
            session_id=session, trace_id_prefix=chosen["q"],
            order="oldest" if (session or user) else (chosen["order"] or "recent"), limit=LIMIT,
        ),
    })


def _results(ctx, found: pl.DataFrame) -> str | None:
    """The list of runs; returns the trace id picked in it, if any."""
    shown = found.select(
        "run_start", "trace_id", "workflow", "outcome", "latency_ms", "cost_usd",
        (pl.col("input_tokens") + pl.col("output_tokens")).alias("tokens"), "error_steps", "steps",
        "unpriced_calls", "tenant_id", "user_id", "session_id", "service_version",
    )
    event = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="tr_results", placeholder="–", height=min(420, 38 + 35 * max(1, shown.height)),
        column_config={
            "run_start": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "trace_id": st.column_config.TextColumn("Trace", width="medium"),
            "workflow": st.column_config.TextColumn("Workflow"),
            "outcome": st.column_config.TextColumn("Outcome"),
            "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.0f"),
            "steps": st.column_config.NumberColumn("Steps"),
            "error_steps": st.column_config.NumberColumn("Failed steps"),
            "tokens": st.column_config.NumberColumn("Tokens", format="compact"),
            "cost_usd": st.column_config.NumberColumn("Cost", format="$%.4f"),
            "unpriced_calls": st.column_config.NumberColumn("Unpriced calls"),
            "tenant_id": st.column_config.TextColumn("Tenant"),
            "user_id": st.column_config.TextColumn("User"),
            "session_id": st.column_config.TextColumn("Session"),
            "service_version": st.column_config.TextColumn("Version"),
        },
    )
    rows = event.selection.rows if event is not None else []
    return found["trace_id"][rows[0]] if rows else None


def _waterfall_frame(steps: pl.DataFrame) -> pl.DataFrame:
    """Rows for the Gantt chart: an indented label, timing, kind, status and hover text."""
    labels, details = [], []
    for row in steps.to_dicts():
        what = row["model"] or row["tool_name"] or ""
        label = "\u2003" * int(row["depth"] or 0) + (row["name"] or row["step_kind"] or "span")
        labels.append(f"{label[:70]}  ·{row['span_id'][-4:]}")
        parts = [f"<b>{html.escape(row['name'] or '')}</b>", f"{row['step_kind']} {html.escape(what)}",
                 f"{fmt_ms(row['duration_ms'])} (at +{fmt_ms(row['offset_ms'])})"]
        if row["input_tokens"] is not None:
            parts.append(f"tokens {fmt_int(row['input_tokens'])} in / {fmt_int(row['output_tokens'])} out")
        if row["cost_usd"] is not None:
            parts.append(f"cost {fmt_usd(row['cost_usd'], 6)}")
        elif row["unpriced"]:
            parts.append("unpriced model")
        if row["status_code"] == "error":
            parts.append(f"<span style='color:#b91c1c'>error: {html.escape(str(row['error_type'] or ''))} "
                         f"{html.escape((row['error_message'] or row['status_message'] or '')[:120])}</span>")
        details.append("<br>".join(parts))
    return steps.select("offset_ms", "duration_ms", "step_kind", "status_code").with_columns(
        pl.Series("label", labels), pl.Series("detail", details))


def _trace_detail(ctx, trace_id: str) -> None:
    steps = data.call(ctx.source, "trace_steps", trace_id)
    if steps.is_empty():
        components.empty_state("Trace not found",
                               f"No steps with trace id <code>{html.escape(trace_id)}</code> are in "
                               "the store.")
        return
    root = steps.filter(pl.col("is_root")).to_dicts()
    head = root[0] if root else steps.row(0, named=True)
    outcome = head.get("outcome") or ("running" if not root else "unknown")
    cost = steps["cost_usd"].sum() if steps["cost_usd"].null_count() < steps.height else None
    unpriced = int(steps["unpriced"].sum())
    st.markdown(f"#### {html.escape(head.get('workflow') or head['name'] or 'Trace')} "
                f":{OUTCOME_COLOURS.get(outcome, 'gray')}-badge[{outcome}]")
    st.markdown(f"`{trace_id}` · started {fmt_time(head['start_time'])}")
    cards = st.columns(5)
    cards[0].metric("Duration", fmt_ms(head["duration_ms"] if root else steps["duration_ms"].max()),
                    border=True)
    cards[1].metric("Steps", fmt_int(steps.height), border=True)
    cards[2].metric("Failed steps", fmt_int((steps["status_code"] == "error").sum()), border=True)
    cards[3].metric("Tokens", fmt_tokens((steps["input_tokens"].sum() or 0)
                                         + (steps["output_tokens"].sum() or 0)), border=True)
    cards[4].metric("Cost", fmt_usd(cost, 6) if cost is not None else "unpriced", border=True,
                    help=f"{unpriced} model calls have no price" if unpriced else None)
    _who(ctx, head)
    components.plot(charts.waterfall(_waterfall_frame(steps)), key="tr_waterfall")
    _steps_table(steps)
    _attributes(steps)


def _who(ctx, head: dict[str, Any]) -> None:
    facts = []
    for label, key in (("Tenant", "tenant_id"), ("Service", "service_name"),
                       ("Version", "service_version")):
        if head.get(key):
            facts.append(f"{label} **{html.escape(str(head[key]))}**")
    if head.get("session_id"):
        session = head["session_id"]
        facts.append("Session " + link(session, traces_url(ctx.filters, session=session)))
    if head.get("user_id"):
        facts.append("User " + link(head["user_id"], traces_url(ctx.filters, user=head["user_id"])))
    if facts:
        st.markdown(" · ".join(facts), unsafe_allow_html=True)


def _steps_table(steps: pl.DataFrame) -> None:
    shown = steps.select(
        pl.concat_str([pl.lit("\u2003").repeat_by(pl.col("depth")).list.join(""), pl.col("name")])
        .alias("step"),
        "step_kind", pl.coalesce("model", "tool_name").alias("model_or_tool"), "offset_ms",
        "duration_ms", "status_code", "error_type", "input_tokens", "cached_input_tokens",
        "output_tokens", "cost_usd", "price_source", "reported_cost_usd", "finish_reason",
    )
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="–", column_config={
        "step": st.column_config.TextColumn("Step", width="large"),
        "step_kind": st.column_config.TextColumn("Kind"),
        "model_or_tool": st.column_config.TextColumn("Model / tool"),
        "offset_ms": st.column_config.NumberColumn("Start (+ms)", format="%.0f"),
        "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.0f"),
        "status_code": st.column_config.TextColumn("Status"),
        "error_type": st.column_config.TextColumn("Error"),
        "input_tokens": st.column_config.NumberColumn("Input", format="localized"),
        "cached_input_tokens": st.column_config.NumberColumn("Cached", format="localized"),
        "output_tokens": st.column_config.NumberColumn("Output", format="localized"),
        "cost_usd": st.column_config.NumberColumn("Cost", format="$%.6f"),
        "price_source": st.column_config.TextColumn("Price source"),
        "reported_cost_usd": st.column_config.NumberColumn("Reported cost", format="$%.6f"),
        "finish_reason": st.column_config.TextColumn("Finish"),
    })


def _attributes(steps: pl.DataFrame) -> None:
    st.markdown("##### Step attributes")
    rows = steps.to_dicts()
    names = [f"{r['name']}  ·{r['span_id'][-4:]}" for r in rows]
    default = next((i for i, r in enumerate(rows) if r["status_code"] == "error"), 0)
    index = st.selectbox("Step", range(len(rows)), format_func=names.__getitem__, index=default,
                         key="tr_step")
    row = rows[index]
    left, right = st.columns([3, 2])
    with left:
        attributes = {**(row["attributes"] or {})}
        table = pl.DataFrame({"attribute": list(attributes), "value": list(attributes.values())},
                             schema={"attribute": pl.String, "value": pl.String})
        st.dataframe(table.sort("attribute"), hide_index=True, width="stretch", placeholder="–")
        resource = row["resource_attributes"] or {}
        if resource:
            st.caption("Resource: " + " · ".join(f"{k}={v}" for k, v in sorted(resource.items())))
    with right:
        if row["status_code"] == "error":
            st.error(f"**{row['error_type'] or 'error'}**"
                     + (f" (HTTP {row['http_status']})" if row["http_status"] else "")
                     + f"  \n{row['error_message'] or row['status_message'] or ''}")
        st.caption("Content as stored, after the privacy policy (redacted by default).")
        for label, key in (("Input", "input_content"), ("Output", "output_content")):
            text = row[key]
            st.text_area(label, text if text is not None else "(not recorded)", height=120,
                         disabled=True, key=f"tr_content_{key}")


def main() -> None:
    ctx = page_context()
    components.page_header("Trace explorer", "Find runs and read them step by step", ctx.filters,
                           periods.window_label(ctx))
    chosen = _search_controls()
    session, user = _param("session"), _param("user")
    if session or user:
        who = f"session {session}" if session else f"user {user}"
        st.markdown(f"**Runs of {html.escape(who)}, in order** (all time) · "
                    + link("clear", traces_url(ctx.filters)), unsafe_allow_html=True)
    found = load(ctx, chosen, session, user)["found"]
    picked = None
    if found.is_empty():
        components.empty_state("No runs match",
                               "No run in the selected range matches these filters. Widen the "
                               "time range in the sidebar or clear a filter above.")
    else:
        more = " (the first 200; narrow the search for others)" if found.height >= LIMIT else ""
        st.caption(f"{fmt_int(found.height)} runs{more}. Select one to read it.")
        picked = _results(ctx, found)
    trace_id = picked or _param("trace")
    if trace_id is None and chosen["q"] and found.height == 1:
        trace_id = found["trace_id"][0]
    if trace_id:
        if picked:
            st.query_params["trace"] = picked
        st.divider()
        _trace_detail(ctx, trace_id)


if __name__ == "__main__":
    main()
