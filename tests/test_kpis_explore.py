"""What the dashboard's pages call: series, spend, traces, waterfalls and release markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from analytics_store import T0, llm, make_store, root, tid, tool

from stepscope.analytics import KPI_KEYS, Filters, kpi_series, step_kpis
from stepscope.analytics.explore import (
    cost_breakdown,
    find_traces,
    release_markers,
    top_cost_traces,
    trace_steps,
)

DAY2 = T0 + timedelta(days=1)
SPECS = [
    root("a", "triage", tenant="acme", session="s1", version="1.0.0", duration_ms=4_000),
    llm("a", "c1", "gpt-4o", input_tokens=2000, output_tokens=100),            # 0.006
    tool("a", "t1", duration_ms=300),
    llm("a", "c2", "gpt-4o", input_tokens=1000, output_tokens=100, parent="t1"),  # 0.0035
    root("b", "triage", "failed", tenant="globex", session="s1", version="1.0.0",
         start=T0 + timedelta(hours=2), duration_ms=9_000),
    tool("b", "t1", error="TimeoutError", start=T0 + timedelta(hours=2)),
    root("c", "refund", tenant="acme", version="1.1.0", start=DAY2, duration_ms=2_000),
    llm("c", "c1", "gpt-4o-mini", start=DAY2, version="1.1.0"),                # 0.00021
]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("explore") / "store", SPECS)
    with store.connect() as connection:
        yield connection


def test_kpi_series_per_day_with_utc_bucket_starts(con):
    series = kpi_series(con, bucket="day", by=("workflow",))
    assert series.columns == ["bucket_start", "workflow", *KPI_KEYS]
    assert [(b, w, n) for b, w, n in series.select("bucket_start", "workflow", "runs").rows()] == [
        (datetime(2026, 11, 17, tzinfo=UTC), "triage", 2),
        (datetime(2026, 11, 18, tzinfo=UTC), "refund", 1),
    ]
    hourly = kpi_series(con, bucket="hour", by=())
    assert hourly["bucket_start"].to_list() == [T0, T0 + timedelta(hours=2), DAY2]


def test_spend_by_workflow_and_tenant_per_day(con):
    spend = cost_breakdown(con, by=("workflow", "tenant"), bucket="day")
    assert spend.select("bucket_start", "workflow", "tenant", "cost_usd").rows() == [
        (datetime(2026, 11, 17, tzinfo=UTC), "triage", "acme", pytest.approx(0.0095)),
        (datetime(2026, 11, 18, tzinfo=UTC), "refund", "acme", pytest.approx(0.00021)),
    ]


def test_find_traces_by_conditions(con):
    def ids(**kwargs):
        return set(find_traces(con, **kwargs)["trace_id"])

    assert ids(outcome="failed") == {tid("b")}
    assert ids(with_errors=True) == {tid("b")}
    assert ids(min_cost_usd=0.001) == {tid("a")}
    assert ids(min_latency_ms=5_000) == {tid("b")}
    assert ids(trace_id_prefix=tid("c")[:6]) == {tid("c")}
    session = find_traces(con, session_id="s1", order="oldest")
    assert session["trace_id"].to_list() == [tid("a"), tid("b")]
    assert ids(filters=Filters(tenants=("globex",))) == {tid("b")}
    top = top_cost_traces(con, limit=1)
    assert (top["trace_id"].item(), top["cost_usd"].item()) == (tid("a"), pytest.approx(0.0095))


def test_trace_waterfall(con):
    steps = trace_steps(con, tid("a"))
    # in start order; c1 and c2 start together, then by span id (c2 is the tool's child)
    assert steps.select("name", "depth", "offset_ms", "cost_usd").rows() == [
        ("invoke_agent triage", 0, 0.0, None),
        ("chat gpt-4o", 2, 1.0, pytest.approx(0.0035)),
        ("chat gpt-4o", 1, 1.0, pytest.approx(0.006)),
        ("execute_tool lookup_order", 1, 2.0, None),
    ]
    assert steps.filter(step_kind="llm")["price_source"].n_unique() == 1
    assert steps["price_source"][1].endswith(": openai gpt-4o")
    assert trace_steps(con, "0" * 32).height == 0


def test_release_markers_are_first_seen_over_all_data(con):
    markers = release_markers(con)
    assert markers.select("workflow", "service_version", "first_seen", "runs").rows() == [
        ("triage", "1.0.0", T0, 2),
        ("refund", "1.1.0", DAY2, 1),
    ]
    # a window after 1.0.0 appeared shows only what started in it
    later = release_markers(con, Filters(since=T0 + timedelta(hours=1)))
    assert later["service_version"].to_list() == ["1.1.0"]


def test_step_kpis_per_tool_and_per_model(con):
    tools = step_kpis(con, by=("tool",)).row(0, named=True)
    assert (tools["tool"], tools["calls"], tools["error_rate"]) == ("lookup_order", 2, 0.5)
    assert tools["cost_usd"] is None
    models = {r["model"]: r for r in step_kpis(con, by=("model", "workflow")).to_dicts()}
    assert models["gpt-4o"]["calls"] == 2 and models["gpt-4o"]["workflow"] == "triage"
    assert models["gpt-4o"]["cost_usd"] == pytest.approx(0.0095)
