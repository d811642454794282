"""analytics.dashboard_queries: the distributions the Drift page draws beside a finding."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from dashboard_fixture import NOW, WEEK, build_store

from stepscope.analytics.dashboard_queries import drift_distribution
from stepscope.analytics.drift import Side
from stepscope.analytics.filters import FilterError, Filters
from stepscope.store import Store
from stepscope.timeparse import Window

BASELINE = Side(window=Window(NOW - 2 * WEEK, NOW - WEEK))
CURRENT = Side(window=Window(NOW - WEEK, NOW))


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    with Store.open(build_store(tmp_path_factory.mktemp("dq"))).connect() as connection:
        yield connection


def totals(frame: pl.DataFrame) -> dict[str, tuple[int, float]]:
    grouped = frame.group_by("side").agg(pl.col("count").sum(), pl.col("share").sum())
    return {side: (count, round(share, 9)) for side, count, share in grouped.iter_rows()}


def test_run_latency_counts_each_finished_run_of_the_workflow_once(con):
    bins = drift_distribution(con, "run_latency_ms", BASELINE, CURRENT, workflow="refund_request")
    assert totals(bins) == {"baseline": (14, 1.0), "current": (28, 1.0)}
    assert bins.height == 2 * 30
    # every refund run takes 2 s: all of each side in the first bin
    first = bins.filter(pl.col("bin_start") == 2000.0)
    assert sorted(first["count"].to_list()) == [14, 28]


def test_call_metrics_are_per_model_and_skip_failed_calls(con):
    bins = drift_distribution(con, "output_tokens_per_call", BASELINE, CURRENT,
                              workflow="kb_answer", model="acme-llm-1")
    assert totals(bins) == {"baseline": (14, 1.0), "current": (14, 1.0)}
    pooled = drift_distribution(con, "output_tokens_per_call", BASELINE, CURRENT, workflow="kb_answer")
    assert totals(pooled) == {"baseline": (28, 1.0), "current": (28, 1.0)}


def test_sides_can_be_service_versions_and_filters_narrow_both(con):
    bins = drift_distribution(con, "steps_per_run", Side(service_version="1.0.0"),
                              Side(service_version="1.1.0"), workflow="refund_request",
                              filters=Filters(tenants=("globex",)))
    assert totals(bins) == {"baseline": (14, 1.0), "current": (7, 1.0)}


def test_no_values_is_an_empty_frame_and_unknown_metrics_are_refused(con):
    empty = drift_distribution(con, "run_latency_ms", BASELINE, CURRENT, workflow="nope")
    assert empty.is_empty() and empty.columns == ["side", "bin_start", "bin_end", "count", "share"]
    with pytest.raises(FilterError):
        drift_distribution(con, "tool_call_mix", BASELINE, CURRENT, workflow="kb_answer")


def test_windows_shift_with_their_sides(con):
    later = Side(window=Window(NOW - timedelta(days=1), NOW))
    bins = drift_distribution(con, "run_latency_ms", BASELINE, later, workflow="kb_answer")
    assert totals(bins) == {"baseline": (14, 1.0), "current": (2, 1.0)}
