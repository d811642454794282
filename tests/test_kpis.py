"""Run KPIs on a small store whose every figure is worked out by hand below.

Prices (genai-prices, USD per million tokens): gpt-4o 2.50 in / 10 out,
gpt-4o-mini 0.15 in / 0.60 out. Runs (workflow, outcome, root latency, model calls):

    r1 triage   completed  10 s  gpt-4o 1000/100 = 0.0035                 tool ok
    r2 triage   completed  20 s  gpt-4o-mini 1000/100 = 0.00021           tool ok
    r3 triage   failed     40 s  gpt-4o 429 (no tokens) + 2000/200 = 0.007  tool error
    r4 triage   escalated  30 s  gpt-4o-mini 1000/100 = 0.00021
                                 + gpt-4o 500/50 = 0.00175
    r5 (running: no root)        gpt-4o 1000/100 = 0.0035
    r6 refund   completed   5 s  mystery-ft 500/50 (no price)
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from analytics_store import T0, llm, make_store, root, tool

from stepscope.analytics import KPI_KEYS, Filters, kpis

RUNS = [
    root("r1", "triage", "completed", duration_ms=10_000, tenant="acme", version="1.0.0"),
    llm("r1", "c1", "gpt-4o", input_tokens=1000, output_tokens=100),
    tool("r1", "t1"),
    root("r2", "triage", "completed", duration_ms=20_000, tenant="acme", version="1.1.0"),
    llm("r2", "c1", "gpt-4o-mini", input_tokens=1000, output_tokens=100, version="1.1.0"),
    tool("r2", "t1", version="1.1.0"),
    root("r3", "triage", "failed", duration_ms=40_000, tenant="globex", error=True),
    llm("r3", "c1", "gpt-4o", input_tokens=None, output_tokens=None, error="RateLimitError"),
    llm("r3", "c2", "gpt-4o", input_tokens=2000, output_tokens=200),
    tool("r3", "t1", error="TimeoutError"),
    root("r4", "triage", "escalated", duration_ms=30_000, tenant="globex"),
    llm("r4", "c1", "gpt-4o-mini", input_tokens=1000, output_tokens=100),
    llm("r4", "c2", "gpt-4o", input_tokens=500, output_tokens=50),
    llm("r5", "c1", "gpt-4o", input_tokens=1000, output_tokens=100),
    root("r6", "refund", "completed", duration_ms=5_000, tenant="acme"),
    llm("r6", "c1", "mystery-ft", provider=None, input_tokens=500, output_tokens=50),
]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("kpis") / "store", RUNS)
    with store.connect() as connection:
        yield connection


def by_key(frame, key):
    return {row[key]: row for row in frame.to_dicts()}


def test_columns_are_the_group_keys_then_exactly_the_kpi_keys(con):
    assert kpis(con).columns == ["workflow", *KPI_KEYS]
    assert kpis(con, by=("workflow", "day")).columns == ["workflow", "day", *KPI_KEYS]
    assert kpis(con, by=()).columns == list(KPI_KEYS)


def test_per_workflow_kpis_worked_by_hand(con):
    triage = by_key(kpis(con), "workflow")["triage"]
    assert triage == {
        "workflow": "triage",
        "runs": 4, "completed": 2, "escalated": 1, "failed": 1,
        "completion_rate": 0.5, "escalation_rate": 0.25,
        # latencies 10, 20, 30, 40 s: linear interpolation between order statistics
        "latency_p50_ms": 25_000.0, "latency_p95_ms": pytest.approx(38_500.0),
        "latency_p99_ms": pytest.approx(39_700.0),
        "llm_calls": 6, "llm_error_rate": pytest.approx(1 / 6),
        "tool_calls": 3, "tool_success_rate": pytest.approx(2 / 3),
        "input_tokens": 5500, "output_tokens": 550, "cached_input_tokens": 0,
        "tokens_per_completed_task": 3025.0,
        "cost_usd": pytest.approx(0.01267),
        "cost_per_run_usd": pytest.approx(0.01267 / 4),
        # the failed run's 0.007 counts: waste is part of the cost of a completed task
        "cost_per_completed_task_usd": pytest.approx(0.01267 / 2),
        "unpriced_llm_calls": 0,
    }


def test_running_runs_count_in_runs_and_sums_but_in_no_rate(con):
    everything = kpis(con, by=()).row(0, named=True)
    assert everything["runs"] == 6                      # r5 is still running
    assert everything["completed"] == 3
    assert everything["completion_rate"] == pytest.approx(3 / 5)
    assert everything["escalation_rate"] == pytest.approx(1 / 5)
    assert everything["latency_p50_ms"] == 20_000.0     # of 5, 10, 20, 30, 40 s
    assert everything["llm_calls"] == 8                 # r5's call counts
    assert everything["llm_error_rate"] == pytest.approx(1 / 7)   # r5's call does not
    assert everything["input_tokens"] == 7000
    assert everything["tokens_per_completed_task"] == pytest.approx((6050 + 550) / 3)
    assert everything["cost_usd"] == pytest.approx(0.01267 + 0.0035)
    assert everything["cost_per_run_usd"] == pytest.approx(0.01267 / 5)
    assert everything["cost_per_completed_task_usd"] == pytest.approx(0.01267 / 3)
    assert everything["unpriced_llm_calls"] == 1


def test_a_running_run_has_no_workflow_yet(con):
    running = by_key(kpis(con), "workflow")[None]
    assert running["runs"] == 1
    assert running["completion_rate"] is None
    assert running["latency_p95_ms"] is None
    assert running["cost_usd"] == pytest.approx(0.0035)


def test_rates_without_a_denominator_are_null(con):
    refund = by_key(kpis(con), "workflow")["refund"]
    assert refund["tool_calls"] == 0
    assert refund["tool_success_rate"] is None
    assert refund["cost_usd"] is None                   # its only call has no price
    assert refund["cost_per_completed_task_usd"] is None
    assert refund["unpriced_llm_calls"] == 1
    failed_only = kpis(con, Filters(tenants=("globex",)), by=()).row(0, named=True)
    # r3 failed, r4 escalated: nothing completed
    assert failed_only["completed"] == 0
    assert failed_only["tokens_per_completed_task"] is None
    assert failed_only["cost_per_completed_task_usd"] is None
    assert failed_only["completion_rate"] == 0.0


def test_by_model_a_run_counts_under_each_model_it_used(con):
    models = by_key(kpis(con, by=("model",)), "model")
    assert set(models) == {"gpt-4o", "gpt-4o-mini", "mystery-ft"}
    assert models["gpt-4o"]["runs"] == 4                # r1, r3, r4 and running r5
    assert models["gpt-4o"]["completion_rate"] == pytest.approx(1 / 3)
    assert models["gpt-4o-mini"]["runs"] == 2           # r2 and r4
    assert models["gpt-4o-mini"]["escalated"] == 1
    # whole runs: r4's gpt-4o call is in its gpt-4o-mini group too
    assert models["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.00021 + 0.00196)
    assert sum(m["runs"] for m in models.values()) == 7 > 6


def test_filters_select_runs_by_their_start_and_root_facts(con):
    assert kpis(con, Filters(workflows=("refund",)), by=())["runs"].item() == 1
    assert kpis(con, Filters(service_versions=("1.1.0",)), by=())["runs"].item() == 1
    assert kpis(con, Filters(tenants=("acme",)), by=())["runs"].item() == 3
    # runs that used gpt-4o-mini, with all their calls
    used_mini = kpis(con, Filters(models=("gpt-4o-mini",)), by=()).row(0, named=True)
    assert used_mini["runs"] == 2
    assert used_mini["llm_calls"] == 3
    assert kpis(con, Filters(since=T0 + timedelta(seconds=1)), by=()).height == 1
    assert kpis(con, Filters(since=T0 + timedelta(seconds=1)), by=())["runs"].item() == 0
    assert kpis(con, Filters(until=T0 + timedelta(seconds=1)), by=())["runs"].item() == 6


def test_percentiles_match_numpy_linear_interpolation(tmp_path):
    latencies = [812.0, 95.5, 3300.0, 1200.25, 640.0, 77.0, 15_000.0, 2048.0, 999.0, 4100.5,
                 350.0, 12.0, 5.5, 7000.0, 260.0, 1.0, 88.8, 4444.0, 2600.0, 930.0, 515.0]
    specs = [root(f"p{i}", "latency", duration_ms=ms) for i, ms in enumerate(latencies)]
    with make_store(tmp_path / "store", specs).connect() as con:
        row = kpis(con, by=()).row(0, named=True)
    for key, q in (("latency_p50_ms", 50), ("latency_p95_ms", 95), ("latency_p99_ms", 99)):
        assert row[key] == pytest.approx(float(np.percentile(latencies, q)), rel=1e-12)


def test_days_and_iso_weeks_are_utc_by_run_start(tmp_path):
    specs = [
        root("a", "triage", start=T0),                                      # Tue W47
        root("b", "triage", start=T0.replace(hour=23, minute=59)),         # same UTC day
        root("c", "triage", start=T0 + timedelta(days=6)),                  # Mon W48
        root("d", "triage", start=T0 - timedelta(days=1, hours=9, seconds=1)),  # Sun W46
    ]
    with make_store(tmp_path / "store", specs).connect() as con:
        days = kpis(con, by=("day",)).select("day", "runs").rows()
        weeks = kpis(con, by=("week",)).select("week", "runs").rows()
    assert [(d.isoformat(), n) for d, n in days] == [
        ("2026-11-15", 1), ("2026-11-17", 2), ("2026-11-23", 1)]
    assert weeks == [("2026-W46", 1), ("2026-W47", 2), ("2026-W48", 1)]
