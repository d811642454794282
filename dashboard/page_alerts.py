"""Alerts: what is firing, what fired recently, and each alert's runbook and runs.

The alerts are evaluated elsewhere (`stepscope alerts run`, or `serve`), which keeps
their state beside the store; this page reads that state (`stepscope.alerts.status`)
and evaluates nothing, so it is as cheap to refresh as any other page.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from stepscope.alerts.status import alerts_frame, transitions_frame
from stepscope.dashboard import charts, components, data, periods
from stepscope.dashboard.components import fmt_int, traces_url, window_range
from stepscope.dashboard.context import page_context

RECENT = timedelta(hours=24)
#: Alert scope keys that are also global filters: scope key -> GlobalFilters attribute.
SCOPE_FILTERS = {"workflow": "workflows", "model": "models", "service_version": "service_versions",
                 "tenant": "tenants", "environment": "environments"}


def parse_scope(text: str) -> dict[str, str]:
    """`workflow=refund_request, tenant=globex` back into a mapping (`all` is empty)."""
    if not text or text == "all":
        return {}
    pairs = (part.split("=", 1) for part in text.split(", ") if "=" in part)
    return {key.strip(): value.strip() for key, value in pairs}


def runs_url(ctx, scope: str, since, until) -> str:
    """The Trace explorer on the runs the alert is about: its scope, from its start."""
    filters = ctx.filters.with_values(range=window_range(since, until))
    for key, value in parse_scope(scope).items():
        attr = SCOPE_FILTERS.get(key)
        if attr:
            filters = filters.with_values(**{attr: (value,)})
    return traces_url(filters)


def load(ctx) -> data.Frames:
    return data.Frames({
        "alerts": lambda: alerts_frame(ctx.settings.db, now=ctx.now, recent=RECENT),
        "history": lambda: transitions_frame(ctx.settings.db, since=ctx.window.start,
                                             until=ctx.window.end),
    })


def firing_intervals(history: pl.DataFrame, until) -> pl.DataFrame:
    """From the state changes, when each alert was firing: rule, scope, start, end."""
    rows = []
    open_since: dict[str, tuple] = {}
    for row in history.sort("at").to_dicts():
        key = row["fingerprint"]
        if row["to_state"] == "firing":
            open_since[key] = (row["rule"], row["scope"], row["severity"], row["at"])
        elif row["from_state"] == "firing" and key in open_since:
            rule, scope, severity, start = open_since.pop(key)
            rows.append((rule, scope, severity, start, row["at"]))
    for rule, scope, severity, start in open_since.values():
        rows.append((rule, scope, severity, start, until))
    return pl.DataFrame(rows, orient="row", schema={
        "rule": pl.String, "scope": pl.String, "severity": pl.String,
        "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})


def _table(ctx, alerts: pl.DataFrame) -> None:
    shown = alerts.with_columns(
        pl.struct("scope", "since").map_elements(
            lambda r: runs_url(ctx, r["scope"], r["since"] or ctx.window.start, ctx.now),
            return_dtype=pl.String).alias("runs"),
    ).select("severity", "state", "rule", "scope", "metric", "value", "threshold", "since",
             "fired_at", "resolved_at", "silenced", "runbook_url", "runs", "description")
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="–", column_config={
        "severity": st.column_config.TextColumn("Severity"),
        "state": st.column_config.TextColumn("State"),
        "rule": st.column_config.TextColumn("Rule", pinned=True),
        "scope": st.column_config.TextColumn("Scope"),
        "metric": st.column_config.TextColumn("Metric"),
        "value": st.column_config.NumberColumn("Value", format="%.4g"),
        "threshold": st.column_config.NumberColumn("Threshold", format="%.4g"),
        "since": st.column_config.DatetimeColumn("Condition since", format="YYYY-MM-DD HH:mm"),
        "fired_at": st.column_config.DatetimeColumn("Fired", format="YYYY-MM-DD HH:mm"),
        "resolved_at": st.column_config.DatetimeColumn("Resolved", format="YYYY-MM-DD HH:mm"),
        "silenced": st.column_config.CheckboxColumn("Silenced"),
        "runbook_url": st.column_config.LinkColumn("Runbook", display_text="runbook"),
        "runs": st.column_config.LinkColumn("Runs", display_text="open runs"),
        "description": st.column_config.TextColumn("Description", width="large"),
    })


def main() -> None:
    ctx = page_context()
    components.page_header("Alerts", "Firing and recent alerts", ctx.filters, periods.window_label(ctx))
    frames = load(ctx)
    alerts, history = frames["alerts"], frames["history"]
    if alerts.is_empty() and history.is_empty():
        components.empty_state(
            "No alerts",
            "Nothing is firing and nothing fired in this range. Alerts appear here once "
            "rules are evaluated against this store, by <code>stepscope alerts run --rules "
            f"FILE --db {ctx.settings.db}</code> or by <code>stepscope serve</code>.",
            icon="🔕",
        )
        return
    counts = {state: int((alerts["state"] == state).sum()) for state in ("firing", "pending", "resolved")}
    cards = st.columns(4)
    cards[0].metric("Firing", fmt_int(counts["firing"]), border=True)
    cards[1].metric("Pending", fmt_int(counts["pending"]), border=True,
                    help="Condition true, not yet for the rule's `for` duration")
    cards[2].metric("Resolved (24 h)", fmt_int(counts["resolved"]), border=True)
    cards[3].metric("Silenced", fmt_int(int(alerts["silenced"].sum())), border=True)

    st.subheader("Now")
    if alerts.is_empty():
        components.empty_state("Nothing firing", "No alert is firing or pending, and none "
                               "resolved in the last 24 hours.", icon="✅")
    else:
        _table(ctx, alerts)

    st.subheader("History")
    if history.is_empty():
        st.caption("No alert changed state in this range.")
        return
    intervals = firing_intervals(history, ctx.window.end)
    if not intervals.is_empty():
        components.plot(charts.alert_timeline(intervals), key="alerts_timeline")
    st.dataframe(history.sort("at", descending=True).select(
        "at", "rule", "scope", "from_state", "to_state", "value", "threshold", "severity"),
        hide_index=True, width="stretch", placeholder="–", column_config={
            "at": st.column_config.DatetimeColumn("At", format="YYYY-MM-DD HH:mm"),
            "rule": st.column_config.TextColumn("Rule"),
            "scope": st.column_config.TextColumn("Scope"),
            "severity": st.column_config.TextColumn("Severity"),
            "from_state": st.column_config.TextColumn("From"),
            "to_state": st.column_config.TextColumn("To"),
            "value": st.column_config.NumberColumn("Value", format="%.4g"),
            "threshold": st.column_config.NumberColumn("Threshold", format="%.4g"),
        })
    st.caption("Only the time range applies on this page: each alert's scope is its rule's own.")


if __name__ == "__main__":
    main()
