"""`compare`: two selections of runs side by side with absolute and relative changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from analytics_store import T0, llm, make_store, root
from click.testing import CliRunner

from stepscope.analytics.compare import COMPARE_COLUMNS, compare, parse_selection
from stepscope.analytics.filters import FilterError, Filters
from stepscope.cli import cli

LAST_WEEK = T0 - timedelta(days=7)
# Last week: 4 triage runs on 1.0.0, 3 completed, 10 s each, gpt-4o-mini 1000/100.
# This week: 4 triage runs on 1.1.0, 2 completed, 20 s each, gpt-4o 1000/100.
SPECS = [
    spec
    for i in range(4)
    for spec in (
        root(f"old{i}", "triage", "completed" if i < 3 else "failed", duration_ms=10_000,
             start=LAST_WEEK + timedelta(hours=i), version="1.0.0"),
        llm(f"old{i}", "c", "gpt-4o-mini", start=LAST_WEEK + timedelta(hours=i)),
        root(f"new{i}", "triage", "completed" if i < 2 else "escalated", duration_ms=20_000,
             start=T0 + timedelta(hours=i), version="1.1.0"),
        llm(f"new{i}", "c", "gpt-4o", start=T0 + timedelta(hours=i), version="1.1.0"),
    )
] + [root("refund", "refund", start=T0, version="0.9.0")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("compare") / "store", SPECS)


def test_selection_parsing():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    window = parse_selection("now-14d..now-7d", now=now).filters
    assert (window.since, window.until) == (now - timedelta(days=14), now - timedelta(days=7))
    release = parse_selection("service_version=1.4.0, model=gpt-4o", Filters(workflows=("a",)))
    assert release.filters.service_versions == ("1.4.0",)
    assert release.filters.models == ("gpt-4o",)
    assert release.filters.workflows == ("a",)
    both = parse_selection("service_version=2.0.0,2026-11-01..2026-11-08").filters
    assert both.since == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(FilterError, match="KEY=VALUE"):
        parse_selection("colour=blue")
    with pytest.raises(FilterError, match="not a window"):
        parse_selection("last tuesday")


def test_week_over_week_side_by_side(store):
    with store.connect() as con:
        rows = compare(con, parse_selection(f"{LAST_WEEK.date()}..{T0.date()}"),
                       parse_selection(f"{T0.date()}..{(T0 + timedelta(days=7)).date()}"),
                       metrics=("runs", "completion_rate", "latency_p50_ms",
                                "cost_per_completed_task_usd"))
    assert rows.columns == ["workflow", *COMPARE_COLUMNS]
    triage = {r["metric"]: r for r in rows.filter(workflow="triage").to_dicts()}
    assert triage["runs"] | {} == {"workflow": "triage", "metric": "runs", "baseline": 4.0,
                                   "current": 4.0, "change": 0.0, "relative_change": 0.0,
                                   "assessment": None}
    completion = triage["completion_rate"]
    assert (completion["baseline"], completion["current"]) == (0.75, 0.5)
    assert completion["change"] == pytest.approx(-0.25)
    assert completion["relative_change"] == pytest.approx(-1 / 3)
    assert completion["assessment"] == "worse"
    assert triage["latency_p50_ms"]["relative_change"] == pytest.approx(1.0)
    assert triage["latency_p50_ms"]["assessment"] == "worse"
    # 4 x 0.00021 over 3 completed, then 4 x 0.0035 over 2 completed
    cost = triage["cost_per_completed_task_usd"]
    assert cost["baseline"] == pytest.approx(0.00084 / 3)
    assert cost["current"] == pytest.approx(0.007)
    # refund ran this week only: its row is there, with no baseline and no change
    refund = rows.filter(workflow="refund", metric="runs").row(0, named=True)
    assert (refund["baseline"], refund["current"], refund["change"]) == (None, 1.0, None)


def test_release_against_release(store):
    with store.connect() as con:
        rows = compare(con, parse_selection("service_version=1.0.0"),
                       parse_selection("service_version=1.1.0"), by=(),
                       metrics=("escalation_rate", "llm_calls"))
    assert rows.columns == list(COMPARE_COLUMNS)
    escalation, calls = rows.to_dicts()
    assert (escalation["baseline"], escalation["current"], escalation["assessment"]) == (
        0.0, 0.5, "worse")
    assert escalation["relative_change"] is None          # nothing to be relative to
    assert (calls["baseline"], calls["current"], calls["assessment"]) == (4.0, 4.0, None)


def test_unknown_metric_is_refused(store):
    with store.connect() as con, pytest.raises(FilterError, match="unknown metric"):
        compare(con, Filters(), Filters(), metrics=("happiness",))


def test_compare_command_json(store):
    result = CliRunner().invoke(cli, [
        "compare", "--db", str(store.path), "--baseline", "service_version=1.0.0",
        "--current", "service_version=1.1.0", "--by", "none", "--metric", "completion_rate",
        "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{
        "metric": "completion_rate", "baseline": 0.75, "current": 0.5, "change": -0.25,
        "relative_change": pytest.approx(-1 / 3), "assessment": "worse"}]


def test_compare_command_names_the_bad_flag(store):
    result = CliRunner().invoke(cli, ["compare", "--db", str(store.path), "--baseline", "x=1",
                                      "--current", "7d"])
    assert result.exit_code == 2
    assert "--baseline/--current" in result.output
