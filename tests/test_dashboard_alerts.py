"""The Alerts page: firing and recent alerts with runbooks, and when each one fired."""

from __future__ import annotations

import pytest
from dashboard_fixture import build_store, evaluate_alerts, markdown_text, metrics, run_page

from stepscope.dashboard.page_alerts import firing_intervals, parse_scope


@pytest.fixture(scope="module")
def store_with_alerts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerts")
    db = build_store(tmp)
    evaluate_alerts(db, tmp)
    return db


def test_firing_alerts_link_to_their_runbook_and_runs(monkeypatch, store_with_alerts):
    at = run_page(monkeypatch, store_with_alerts, "page_alerts.py")
    assert not at.exception, [e.message for e in at.exception]
    cards = metrics(at)
    assert cards["Firing"][0] == "1" and cards["Resolved (24 h)"][0] == "0"
    now = at.dataframe[0].value
    assert list(now["rule"]) == ["escalation_rate_high"]
    row = now.iloc[0]
    assert row["state"] == "firing" and row["scope"] == "workflow=refund_request"
    assert row["runbook_url"] == "https://runbooks.example/escalations"
    assert row["runs"] == ("traces?range=2026-11-13T12%3A00%3A00Z..2026-11-16T00%3A00%3A00Z"
                           "&workflow=refund_request")


def test_history_shows_when_each_alert_fired_and_resolved(monkeypatch, store_with_alerts):
    at = run_page(monkeypatch, store_with_alerts, "page_alerts.py")
    history = at.dataframe[1].value
    resolved = history[history["to_state"] == "resolved"]
    assert list(resolved["rule"]) == ["tool_call_success_low"]
    assert len(at.get("plotly_chart")) == 1


def test_a_store_without_alert_state_says_how_to_evaluate_rules(monkeypatch, tmp_path):
    db = build_store(tmp_path)
    at = run_page(monkeypatch, db, "page_alerts.py")
    assert not at.exception
    assert "stepscope alerts run --rules FILE" in markdown_text(at)


def test_scopes_parse_back_into_filters():
    assert parse_scope("tenant=globex, workflow=refund_request") == {
        "tenant": "globex", "workflow": "refund_request"}
    assert parse_scope("all") == {}


def test_firing_intervals_pair_firing_with_resolution(store_with_alerts):
    from dashboard_fixture import NOW

    from stepscope.alerts.status import transitions_frame

    intervals = firing_intervals(transitions_frame(store_with_alerts), NOW)
    spans = {(r["rule"], r["start"].isoformat(), r["end"].isoformat()) for r in intervals.to_dicts()}
    assert spans == {
        ("tool_call_success_low", "2026-11-13T12:00:00+00:00", "2026-11-14T12:00:00+00:00"),
        ("escalation_rate_high", "2026-11-13T12:00:00+00:00", "2026-11-16T00:00:00+00:00"),
    }
