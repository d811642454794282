"""The bundled sample traces: the KPIs see the planted incidents as their ground truth says.

The ground truth (sample_traces/data/ground_truth.json) was measured by the generator
from its own spans with the definitions of the KPIs; here the same figures must come out
of the OTLP files after ingest, pricing and the run tables.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from stepscope.analytics import Filters, kpis
from stepscope.analytics.compare import compare, parse_selection
from stepscope.analytics.explore import cost_breakdown
from stepscope.analytics.report import weekly_report
from stepscope.analytics.report_render import render_markdown
from stepscope.config import Config
from stepscope.sample_traces import bundled_sample_dir
from stepscope.store import Store

SAMPLE = bundled_sample_dir()
GROUND_TRUTH = json.loads((SAMPLE / "ground_truth.json").read_text())
INCIDENTS = {i["id"]: i for i in GROUND_TRUTH["incidents"]}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_filters(window: dict, **others) -> Filters:
    return Filters(since=instant(window["start"]), until=instant(window["end"]), **others)


def effect(incident: dict, metric: str) -> dict:
    for item in (incident["effect"], *incident["other_effects"]):
        if item["metric"] == metric:
            return item
    raise KeyError(metric)


@pytest.fixture(scope="module")
def con(sample_store: Store):
    """The bundled sample, ingested once per session (tests/conftest.py)."""
    with sample_store.connect() as connection:
        yield connection


def measured(con, incident: dict, metric: str) -> tuple[float, float]:
    workflow = (incident["workflow"],)
    before = kpis(con, window_filters(incident["baseline_window"], workflows=workflow), by=())
    after = kpis(con, window_filters(incident["current_window"], workflows=workflow), by=())
    return before[metric].item(), after[metric].item()


def test_every_run_of_the_sample_is_counted(con):
    totals = kpis(con, by=("workflow",))
    runs = dict(zip(totals["workflow"], totals["runs"], strict=True))
    assert runs == {name: w["runs"] for name, w in GROUND_TRUTH["data"]["workflows"].items()}


def test_model_swap_raises_cost_per_completed_task_by_its_ground_truth_factor(con):
    incident = INCIDENTS["triage-model-swap"]
    truth = effect(incident, "cost_per_completed_task_usd")
    before, after = measured(con, incident, "cost_per_completed_task_usd")
    assert before == pytest.approx(truth["baseline"], rel=1e-6)
    assert after == pytest.approx(truth["current"], rel=1e-6)
    assert after / before == pytest.approx(truth["factor"], rel=1e-6)
    assert after / before > 1.5


def test_release_v2_raises_p95_latency_as_planted(con):
    incident = INCIDENTS["release-v2-latency"]
    truth = effect(incident, "latency_p95_ms")
    before, after = measured(con, incident, "latency_p95_ms")
    assert before == pytest.approx(truth["baseline"], rel=1e-9)
    assert after == pytest.approx(truth["current"], rel=1e-9)
    assert after / before == pytest.approx(truth["factor"], rel=1e-9)
    p50 = effect(incident, "latency_p50_ms")
    assert measured(con, incident, "latency_p50_ms") == (
        pytest.approx(p50["baseline"], rel=1e-9), pytest.approx(p50["current"], rel=1e-9))


def test_release_against_release_shows_the_regression(con):
    incident = INCIDENTS["release-v2-latency"]
    details = incident["details"]
    base = Filters(workflows=(incident["workflow"],))
    rows = compare(
        con,
        parse_selection(f"service_version={details['service_version_before']}", base),
        parse_selection(f"service_version={details['service_version_after'][0]}", base),
        by=(), metrics=("latency_p95_ms", "llm_calls", "cost_per_run_usd"),
    )
    p95 = rows.filter(metric="latency_p95_ms").row(0, named=True)
    assert p95["assessment"] == "worse"
    assert p95["relative_change"] > 0.8


def test_the_unpriced_model_is_counted_never_priced_at_zero(con):
    incident = INCIDENTS["unpriced-custom-model"]
    spend = cost_breakdown(con, window_filters(incident["current_window"]), bucket=None)
    row = spend.filter(model=incident["model"]).row(0, named=True)
    assert row["unpriced_calls"] == incident["effect"]["current"]
    assert row["cost_usd"] is None


def test_weekly_review_names_the_swap_the_release_and_the_429_burst(con):
    report = weekly_report(con, "2026-W46", Config())
    text = render_markdown(report)
    assert "Model **claude-sonnet-4-5-20250929** first used this week" in text
    assert "Release **2.0.0** of helpcenter-bot first seen" in text
    burst = INCIDENTS["issue-refund-429-burst"]
    top_failure = report.failures.row(0, named=True)
    assert (top_failure["error_type"], top_failure["http_status"], top_failure["tools"],
            top_failure["count"], top_failure["is_new"]) == (
        "RateLimitError", 429, ["issue_refund"], burst["details"]["failed_steps"], True)
    assert "New failure **RateLimitError** (HTTP 429): 61 failures in refund_request" in text
    triage = report.workflows.filter(workflow="support_triage",
                                     metric="cost_per_completed_task_usd").row(0, named=True)
    assert triage["assessment"] == "worse"
