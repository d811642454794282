"""The same analytics on DuckDB and on ClickHouse give the same answers.

The bundled sample is ingested through the same pipeline into the embedded store and
into a ClickHouse store (chdb), and every analytics function the commands, the
dashboard and alerts call is asked the same questions of both: rows, columns, types
and values must agree (floats to a relative 1e-9, the noise of summing in another
order).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from clickhouse_support import assert_same_value

from stepscope.analytics import kpi_series, kpis, step_kpis
from stepscope.analytics.alert_queries import windowed_kpis, windowed_unpriced_calls
from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.compare import compare, parse_selection
from stepscope.analytics.dashboard_queries import DISTRIBUTION_METRICS, drift_distribution
from stepscope.analytics.drift import Side, drift_findings, drift_tests
from stepscope.analytics.explore import (
    cost_breakdown,
    find_traces,
    price_table,
    release_markers,
    top_cost_traces,
    trace_steps,
)
from stepscope.analytics.filters import Filters
from stepscope.analytics.report import weekly_report
from stepscope.timeparse import Window, parse_instant

NOW = parse_instant("2026-11-15T23:33:08Z")
LAST_WEEK = Filters(since=NOW - timedelta(days=7), until=NOW)
REFUNDS = Filters(workflows=("refund_request",))


@pytest.fixture(scope="module")
def both(sample_store, sample_clickhouse_store):
    with sample_store.connect() as duck, sample_clickhouse_store.connect() as click:
        yield duck, click


def same(both, function, *args, **kwargs):
    duck, click = both
    expected = function(duck, *args, **kwargs)
    assert_same_value(expected, function(click, *args, **kwargs))
    return expected


@pytest.mark.parametrize("by", [("workflow",), ("workflow", "day"), ("workflow", "week"), ("model",),
                                ("tenant",), ("service_version",), ("user",), ()])
def test_kpis(both, by) -> None:
    frame = same(both, kpis, None, by)
    assert frame.height > 0


@pytest.mark.parametrize("filters", [LAST_WEEK, REFUNDS, Filters(models=("gpt-4o",)),
                                     Filters(tenants=("globex", "initech"))])
def test_kpis_filtered(both, filters) -> None:
    same(both, kpis, filters, ("workflow",))


@pytest.mark.parametrize("bucket", ["hour", "day", "week"])
def test_kpi_series(both, bucket) -> None:
    same(both, kpi_series, LAST_WEEK, bucket, ("workflow",))


@pytest.mark.parametrize("by", [("model",), ("tool",), ("model", "workflow"), ("tool", "day"),
                                ("model", "provider")])
def test_step_kpis(both, by) -> None:
    assert same(both, step_kpis, None, by).height > 0
    same(both, step_kpis, REFUNDS, by)


def test_compare(both) -> None:
    frame = same(both, compare, parse_selection("service_version=1.9.4"),
                 parse_selection("service_version=2.0.0"))
    assert frame.height > 0


@pytest.mark.parametrize("by", ["model", "provider", "workflow", "tenant", "user",
                                "service_version", ("workflow", "model")])
@pytest.mark.parametrize("bucket", ["hour", "day", "week", "month", None])
def test_cost_breakdown(both, by, bucket) -> None:
    same(both, cost_breakdown, LAST_WEEK, by, bucket)


@pytest.mark.parametrize("options", [
    {}, {"order": "cost"}, {"order": "latency"}, {"order": "oldest"}, {"outcome": "failed"},
    {"with_errors": True}, {"min_cost_usd": 0.05}, {"min_latency_ms": 20_000.0},
    {"trace_id_prefix": "0a"},
])
def test_find_traces(both, options) -> None:
    same(both, find_traces, REFUNDS, **options, limit=50)


def test_top_cost_traces_and_their_waterfalls(both) -> None:
    top = same(both, top_cost_traces, LAST_WEEK, 5)
    errors = same(both, find_traces, None, with_errors=True, limit=3)
    for trace_id in [*top["trace_id"].to_list(), *errors["trace_id"].to_list()]:
        steps = same(both, trace_steps, trace_id)
        assert steps.height > 1


def test_sessions_in_order(both) -> None:
    runs = same(both, find_traces, None, limit=1)
    session = runs["session_id"][0]
    if session is not None:
        same(both, find_traces, None, session_id=session, order="oldest")


def test_release_markers_and_prices(both) -> None:
    assert same(both, release_markers, None).height > 0
    same(both, release_markers, LAST_WEEK)
    same(both, price_table)


@pytest.mark.parametrize("filters", [None, REFUNDS, LAST_WEEK])
def test_failure_clusters(both, filters) -> None:
    clusters = same(both, failure_clusters, filters, now=NOW)
    assert clusters.height > 0


def test_failure_clusters_of_the_last_hour(both) -> None:
    same(both, failure_clusters, Filters(since=NOW - timedelta(hours=6), until=NOW), now=NOW)


def test_drift(both) -> None:
    findings = same(both, drift_findings, now=NOW)
    assert findings.height > 0
    same(both, drift_tests, now=NOW)
    same(both, drift_findings, Side(service_version="1.9.4"), Side(service_version="2.0.0"))


@pytest.mark.parametrize("metric", sorted(DISTRIBUTION_METRICS))
def test_drift_distributions(both, metric) -> None:
    baseline = Side(window=Window(NOW - timedelta(days=8), NOW - timedelta(days=1)))
    current = Side(window=Window(NOW - timedelta(days=1), NOW))
    same(both, drift_distribution, metric, baseline, current, workflow="kb_answer")


def test_windowed_alert_queries(both) -> None:
    windows = [Window(NOW - timedelta(hours=h + 1), NOW - timedelta(hours=h)) for h in range(0, 48, 6)]
    same(both, windowed_kpis, windows, None, ("workflow",))
    same(both, windowed_unpriced_calls, windows)


def test_weekly_report(both) -> None:
    duck, click = both
    expected = weekly_report(duck, "2026-W46")
    actual = weekly_report(click, "2026-W46")
    assert_same_value(vars(expected), vars(actual))


@pytest.fixture(scope="module")
def hourly(sample_store, chdb_root):
    """The sample in a ClickHouse store partitioned by hour: 327 partitions, so runs split
    over partitions are the rule and segment ids pass what a small integer holds."""
    from clickhouse_support import chdb_url

    from stepscope.config import Config
    from stepscope.ingest.pipeline import ingest_paths
    from stepscope.sample_traces import bundled_traces_dir
    from stepscope.stores import open_store

    store = open_store(chdb_url(chdb_root, "sample_hourly") + "&partition=hour", create=True)
    assert ingest_paths(store, [bundled_traces_dir()], Config()).rejected == []
    with sample_store.connect() as duck, store.connect() as click:
        assert len(click.segments()) > 300
        yield duck, click


@pytest.mark.parametrize("question", [
    lambda con: kpis(con, None, ("workflow", "day")),
    lambda con: step_kpis(con, REFUNDS, ("tool",)),
    lambda con: cost_breakdown(con, LAST_WEEK, "model", "hour"),
    lambda con: failure_clusters(con, None, now=NOW),
    lambda con: drift_findings(con, now=NOW),
    lambda con: find_traces(con, None, order="cost", limit=20),
])
def test_hour_partitions_give_the_same_answers(hourly, question) -> None:
    duck, click = hourly
    assert_same_value(question(duck), question(click))
