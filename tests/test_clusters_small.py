"""Failure clusters on a small hand-built store: what counts, ids, new, trend, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from otlp_builders import (
    SPAN_KIND_CLIENT,
    STATUS_ERROR,
    exception_event,
    hex_trace,
    request,
    span,
    to_protobuf,
)

from stepscope.analytics.clusters import CLUSTER_COLUMNS, failure_clusters
from stepscope.analytics.error_templates import fingerprint
from stepscope.analytics.filters import Filters
from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths
from stepscope.store import Store
from stepscope.timeparse import Window

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # a Tuesday
RATE_TEMPLATE = "Rate limit exceeded, retry after <NUM>s (request req_<ID>)"
SCHEMA_TEMPLATE = "unknown field '<VAL>' for account acct_<ID>"
ROOT, STEP = 1, 2


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000


def _run(trace: int, workflow: str | None, start: datetime, step: str, *, error_type: str | None,
         message: str | None, http_status: int | None = None, tool: str | None = None,
         model: str | None = None) -> list:
    """A run (root span, unless `workflow` is None: not arrived yet) with one step 2 ms in."""
    spans = []
    if workflow is not None:
        spans.append(span(f"invoke_agent {workflow}", trace=trace, span=10 * trace + ROOT,
                          start_ns=_ns(start), duration_ms=5000,
                          attributes={"gen_ai.operation.name": "invoke_agent",
                                      "gen_ai.agent.name": workflow, "task.outcome": "completed"}))
    attributes: dict = ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool} if tool
                        else {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                              "gen_ai.provider.name": "openai"})
    if error_type:
        attributes["error.type"] = error_type
    if http_status:
        attributes["http.response.status_code"] = http_status
    events = [exception_event(error_type, message, _ns(start) + 3_000_000)] if message else []
    spans.append(span(step, trace=trace, span=10 * trace + STEP, parent=10 * trace + ROOT,
                      kind=SPAN_KIND_CLIENT, start_ns=_ns(start) + 2_000_000, duration_ms=200,
                      attributes=attributes, events=events,
                      status=STATUS_ERROR if error_type else 0))
    return spans


def _spans() -> list:
    spans = []
    for i in range(5):  # five 429s of one tool, an hour apart, each with its own values
        spans += _run(100 + i, "refund_request", T0 + timedelta(hours=i), "execute_tool issue_refund",
                      tool="issue_refund", error_type="RateLimitError", http_status=429,
                      message=f"Rate limit exceeded, retry after {10 + i}s (request req_{i}a{i}b{i}c{i})")
        spans += [span("chat gpt-4o-mini", trace=100 + i, span=10 * (100 + i) + 3,
                       parent=10 * (100 + i) + ROOT, start_ns=_ns(T0 + timedelta(hours=i)) + 5_000_000,
                       kind=SPAN_KIND_CLIENT,
                       attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                   "gen_ai.request.model": "gpt-4o-mini",
                                   "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10})]
    for i in range(2):  # a failure that first appears two days later
        spans += _run(200 + i, "account_config", T0 + timedelta(days=2, hours=i),
                      "execute_tool update_settings", tool="update_settings",
                      error_type="SettingsSchemaError", http_status=422,
                      message=f"unknown field 'f{i}' for account acct_{i}0c0ffee")
    spans += _run(300, "kb_answer", T0 - timedelta(days=3), "chat gpt-4o", model="gpt-4o",
                  error_type="InternalServerError", http_status=500,
                  message="The server had an error (request id 7d1f0c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6)")
    # An HTTP failure with neither error status nor message, in a run whose root span
    # has not arrived yet.
    spans += _run(400, None, T0 + timedelta(hours=1), "execute_tool get_account", tool="get_account",
                  error_type=None, message=None, http_status=404)
    return spans


def _store(path: Path, spans: list, batches: int = 1) -> Store:
    """Ingest the spans as OTLP/protobuf requests, `batches` files of interleaved spans."""
    store = Store.open(path / "db", create=True)
    files = []
    for b in range(batches):
        file = path / f"export-{b}.pb"
        file.write_bytes(to_protobuf(request(spans[b::batches])))
        files.append(file)
    report = ingest_paths(store, files, Config(), workers=1)
    assert report.rejected == [] and report.spans_stored == len(spans)
    return store


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    with _store(tmp_path_factory.mktemp("clusters"), _spans()).connect() as connection:
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
    assert rate["service_versions"] == ["1.4.2"]  # the default resource of otlp_builders
    # A tool failure's models are those of the runs it failed in.
    assert rate["models"] == ["gpt-4o-mini"]
    # Tool steps start 2 ms after their run.
    assert rate["first_seen"] == T0 + timedelta(milliseconds=2)
    assert rate["last_seen"] == T0 + timedelta(hours=4, milliseconds=2)
    # The most recent runs first.
    assert rate["example_trace_ids"] == [hex_trace(104), hex_trace(103), hex_trace(102)]
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


def test_ids_do_not_depend_on_the_order_spans_arrive_in(tmp_path: Path, con) -> None:
    expected = failure_clusters(con, now=T0)
    for name, spans, batches in (("reversed", _spans()[::-1], 1), ("interleaved", _spans(), 3)):
        with _store(tmp_path / name, spans, batches).connect() as other:
            assert failure_clusters(other, now=T0).equals(expected)
