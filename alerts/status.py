"""Current and recent alerts as DataFrames, for the dashboard and `stepscope alerts status`.

These read the state `alerts run` (or `serve`) keeps beside the store; they evaluate
nothing, so a page can call them on every rerun.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from stepscope.alerts.silences import silenced_by, silences
from stepscope.alerts.state import ACTIVE_STATES, RESOLVED, STATE_FILE, AlertState
from stepscope.timeparse import to_utc, utc_now

#: Columns of `alerts_frame`, in order.
ALERT_COLUMNS = {
    "rule": pl.String, "state": pl.String, "severity": pl.String, "scope": pl.String,
    "metric": pl.String, "value": pl.Float64, "threshold": pl.Float64,
    "since": pl.Datetime("us", "UTC"), "fired_at": pl.Datetime("us", "UTC"),
    "resolved_at": pl.Datetime("us", "UTC"), "evaluated_at": pl.Datetime("us", "UTC"),
    "silenced": pl.Boolean, "runbook_url": pl.String, "description": pl.String,
    "labels": pl.String, "fingerprint": pl.String,
}
TRANSITION_COLUMNS = {
    "at": pl.Datetime("us", "UTC"), "rule": pl.String, "scope": pl.String,
    "from_state": pl.String, "to_state": pl.String, "value": pl.Float64,
    "threshold": pl.Float64, "severity": pl.String, "fingerprint": pl.String,
}
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_STATE_RANK = {"firing": 0, "pending": 1, "resolved": 2}


def scope_text(scope: dict[str, str]) -> str:
    """`workflow=refund_request, tenant=globex` (sorted), or `all` for an unscoped rule."""
    return ", ".join(f"{k}={v}" for k, v in sorted(scope.items())) or "all"


def open_state(db: str | Path, state_path: str | Path | None = None) -> AlertState | None:
    """The live state of a store (None when alerts were never evaluated there)."""
    path = Path(state_path) if state_path is not None else Path(db) / STATE_FILE
    return AlertState(path) if path.exists() else None


def alerts_frame(db: str | Path, *, now: datetime | None = None,
                 recent: timedelta = timedelta(hours=24),
                 state_path: str | Path | None = None) -> pl.DataFrame:
    """Firing and pending alerts, then those resolved within `recent` before `now`.

    Sorted firing first, then by severity and rule. Empty (with the columns) when the
    store has no alert state yet. `silenced` says whether a silence in force holds back
    the alert's notifications.
    """
    state = open_state(db, state_path)
    if state is None:
        return pl.DataFrame(schema=ALERT_COLUMNS)
    now = to_utc(now) if now is not None else utc_now()
    try:
        active = silences(state, active_at=now)
        rows = []
        for alert in state.alerts():
            if alert.state not in ACTIVE_STATES and not (
                    alert.state == RESOLVED and alert.resolved_at and alert.resolved_at >= now - recent):
                continue
            rows.append({
                "rule": alert.rule, "state": alert.state, "severity": alert.severity,
                "scope": scope_text(alert.scope), "metric": alert.metric, "value": alert.value,
                "threshold": alert.threshold, "since": alert.since, "fired_at": alert.fired_at,
                "resolved_at": alert.resolved_at, "evaluated_at": alert.evaluated_at,
                "silenced": silenced_by(alert, active) is not None,
                "runbook_url": alert.runbook_url, "description": alert.description,
                "labels": json.dumps(alert.labels, sort_keys=True),
                "fingerprint": alert.fingerprint,
            })
    finally:
        state.close()
    rows.sort(key=lambda r: (_STATE_RANK.get(r["state"], 9), _SEVERITY_RANK.get(r["severity"], 9),
                             r["rule"], r["scope"]))
    return pl.DataFrame(rows, schema=ALERT_COLUMNS, orient="row")


def transitions_frame(db: str | Path, *, since: datetime | None = None,
                      until: datetime | None = None, rule: str | None = None,
                      state_path: str | Path | None = None) -> pl.DataFrame:
    """The history: every change of state, oldest first."""
    state = open_state(db, state_path)
    if state is None:
        return pl.DataFrame(schema=TRANSITION_COLUMNS)
    try:
        rows = state.transitions(since, until, rule)
    finally:
        state.close()
    records = [{**{k: r[k] for k in TRANSITION_COLUMNS if k != "scope"},
                "scope": scope_text(r["scope"])} for r in rows]
    return pl.DataFrame(records, schema=TRANSITION_COLUMNS, orient="row")
