"""Failure clusters on a small hand-built store: what counts, ids, new, trend, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics_store import T0, llm, make_store, root, tid, tool
from stepscope.analytics.clusters import CLUSTER_COLUMNS, failure_clusters
from stepscope.analytics.error_templates import fingerprint
from stepscope.analytics.filters import Filters

from stepscope.timeparse import Window

RATE_TEMPLATE = "Rate limit exceeded, retry after <NUM>s (request req_<ID>)"
SCHEMA_TEMPLATE = "unknown field '<VAL>' for account acct_<ID>"


def _rows() -> list[dict]:
    rows = []
    for i in range(5):  # five 429s of one tool, an hour apart, each with its own values
        t, start = f"rate{i}", T0 + timedelta(hours=i)
        rows += [root(t, "refund_request", start=start),
                 tool(t, "refund", "issue_refund", status="error", start=start,
                      error_type="RateLimitError", http_status=429,
                      error_message=f"Rate limit exceeded, retry after {10 + i}s "
                                    f"(request req_{i}a{i}b{i}c{i})"),
                 tool(t, "lookup", "get_account", start=start)]
    for i in range(2):  # a failure that first appears two days later
        t, start = f"schema{i}", T0 + timedelta(days=2, hours=i)
        rows += [root(t, "account_config", start=start),
                 tool(t, "save", "update_settings", status="error", start=start,
                      error_type="SettingsSchemaError", http_status=422,
                      error_message=f"unknown field 'f{i}' for account acct_{i}0c0ffee")]
    start = T0 - timedelta(days=3)  # a model-call failure, earlier
    rows += [root("llm", "kb_answer", start=start),
             llm("llm", "answer", "gpt-4o", status="error", start=start,
                 error_type="InternalServerError", http_status=500,
                 error_message="The server had an error (request id 7d1f0c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6)")]
    # An HTTP failure with neither error status nor message, in a run whose root has
    # not arrived yet.
    rows += [tool("http", "fetch", "get_account", start=T0 + timedelta(hours=1), http_status=404)]
    return rows


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    store = make_store(tmp_path_factory.mktemp("clusters") / "db", _rows())
    with store.connect() as connection:
        yield connection


def _by_error(frame) -> dict[str, dict]:
    return {row["error_type"] or f"HTTP {row['http_status']}": row for row in frame.to_dicts()}


def test_one_cluster_per_failure_with_counts_ids_and_context(con) -> None:
    frame = failure_clusters(con, now=T0 + timedelta(days=3))
    assert frame.columns == list(CLUSTER_COLUMNS)
    assert frame["count"].to_list() == [5, 2, 1, 1]
    rate = _by_error(frame)["RateLimitError"]
    assert rate["cluster_id"] == fingerprint("RateLimitError", 429, "issue_refund", RATE_TEMPLATE)
    assert rate["label"] == RATE_TEMPLATE
    assert rate["member_ids"] == [rate["cluster_id"]]
    assert (rate["http_status"], rate["tools"], rate["workflows"]) == (429, ["issue_refund"],
                                                                      ["refund_request"])
    assert rate["service_versions"] == ["1.0.0"]
    assert rate["models"] == []
    # Tool steps start 2 ms after their run.
    assert rate["first_seen"] == T0 + timedelta(milliseconds=2)
    assert rate["last_seen"] == T0 + timedelta(hours=4, milliseconds=2)
    # The most recent runs first.
    assert rate["example_trace_ids"] == [tid("rate4"), tid("rate3"), tid("rate2")]
    server = _by_error(frame)["InternalServerError"]
    assert server["models"] == ["gpt-4o"]
    assert server["label"] == "The server had an error (request id <UUID>)"


def test_a_failure_known_only_by_its_http_status_is_clustered(con) -> None:
    http = _by_error(failure_clusters(con, now=T0 + timedelta(days=3)))["HTTP 404"]
    assert http["label"] == "error (HTTP 404)"
    assert http["tools"] == ["get_account"]
    assert http["workflows"] == []  # its run has no root span yet


def test_new_means_absent_from_the_baseline(con) -> None:
    frame = failure_clusters(con, Filters(since=T0 - timedelta(days=4)),
                             baseline=Window(T0 - timedelta(days=7), T0 + timedelta(days=1)))
    assert {k: r["is_new"] for k, r in _by_error(frame).items()} == {
        "RateLimitError": False, "SettingsSchemaError": True,
        "InternalServerError": False, "HTTP 404": False,
    }


def test_default_baseline_is_the_week_before_the_last_day(con) -> None:
    # At T0+2d12h the last day holds only the schema failure; the week before it, the rest.
    frame = failure_clusters(con, now=T0 + timedelta(days=2, hours=12))
    assert [r["error_type"] for r in frame.to_dicts() if r["is_new"]] == ["SettingsSchemaError"]
    # A week later nothing happened in the last day, so nothing is new.
    frame = failure_clusters(con, now=T0 + timedelta(days=9))
    assert not any(frame["is_new"].to_list())


def test_window_and_workflow_filters(con) -> None:
    frame = failure_clusters(con, Filters(since=T0 + timedelta(hours=2), until=T0 + timedelta(days=1)))
    assert _by_error(frame)["RateLimitError"]["count"] == 3
    assert set(_by_error(frame)) == {"RateLimitError"}
    frame = failure_clusters(con, Filters(workflows=("account_config",)))
    assert [r["error_type"] for r in frame.to_dicts()] == ["SettingsSchemaError"]


def test_trend_counts_per_bucket_over_the_window(con) -> None:
    frame = failure_clusters(
        con, Filters(since=datetime(2026, 11, 17, tzinfo=UTC), until=datetime(2026, 11, 20, tzinfo=UTC)),
        bucket=timedelta(days=1))
    rows = _by_error(frame)
    assert rows["RateLimitError"]["trend"] == [5, 0, 0]
    assert rows["SettingsSchemaError"]["trend"] == [0, 0, 2]
    assert rows["RateLimitError"]["trend_start"] == datetime(2026, 11, 17, tzinfo=UTC)
    assert rows["RateLimitError"]["trend_bucket"] == "1d"


def test_no_failure_gives_an_empty_frame_with_the_columns(con) -> None:
    frame = failure_clusters(con, Filters(since=T0 + timedelta(days=30)))
    assert frame.is_empty()
    assert frame.columns == list(CLUSTER_COLUMNS)


def test_quoted_values_are_masked_so_both_schema_failures_are_one_failure(con) -> None:
    # 'f0' and 'f1' hold digits, so both read as values: one template, one member.
    schema = _by_error(failure_clusters(con))["SettingsSchemaError"]
    assert schema["label"] == SCHEMA_TEMPLATE
    assert schema["member_ids"] == [fingerprint("SettingsSchemaError", 422, "update_settings",
                                                SCHEMA_TEMPLATE)]


def test_ids_do_not_depend_on_the_order_rows_were_stored(tmp_path: Path, con) -> None:
    rows = _rows()
    store = make_store(tmp_path / "a", rows[::2])
    store.append_steps(make_store(tmp_path / "tmp", rows[1::2]).connect().sql(
        "SELECT * FROM steps").to_arrow_table())
    reversed_store = make_store(tmp_path / "b", rows[::-1])
    expected = failure_clusters(con, now=T0)
    for other in (store, reversed_store):
        with other.connect() as c:
            assert failure_clusters(c, now=T0).equals(expected)
