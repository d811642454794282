"""Every dashboard page, run with Streamlit's AppTest on a known fixture store.

The fixture (tests/dashboard_fixture.py) goes through ingest as real OTLP payloads;
its docstring works out the figures asserted here.
"""

from __future__ import annotations

import pytest
from dashboard_fixture import (
    PAGES,
    RATE_LIMIT_MESSAGE,
    build_store,
    markdown_text,
    metrics,
    run_page,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("dashboard"))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_an_exception(monkeypatch, store, page):
    at = run_page(monkeypatch, store, page)
    assert not at.exception, [e.message for e in at.exception]
    assert at.title, "every page has a title"


def test_overview_cards_compare_with_the_week_before(monkeypatch, store):
    cards = metrics(run_page(monkeypatch, store))
    assert cards["Runs"] == ("42", "+50.0%")
    assert cards["Completion rate"] == ("83.3%", "-16.7 pp")
    assert cards["Escalation rate"] == ("16.7%", "+16.7 pp")
    assert cards["Tool-call success"] == ("92.9%", "-7.1 pp")
    assert cards["Spend"] == ("$0.1009", "+94.3%")
    assert cards["Cost / completed task"] == ("$0.0029", "+55.5%")


def test_overview_workflow_table_links_to_the_runs_behind_each_number(monkeypatch, store):
    text = markdown_text(run_page(monkeypatch, store))
    assert '<a href="traces?workflow=refund_request" target="_self">refund_request</a>' in text
    assert '<a href="traces?workflow=kb_answer" target="_self">kb_answer</a>' in text
    # refund_request: 28 runs now against 14 the week before, escalations link to the runs
    assert '<a href="traces?workflow=refund_request" target="_self">28</a>' in text
    assert "traces?workflow=refund_request&amp;outcome=escalated" in text
    # the escalation rate rose 25 points: bad news, in red
    assert '<span class="ss-delta" style="color:#b91c1c">▲ 25.0 pp</span>' in text


def test_overview_trend_chart_marks_the_release(monkeypatch, store):
    at = run_page(monkeypatch, store)
    chart = at.get("plotly_chart")[0]
    spec = chart.proto.spec
    assert "billing-agent 1.1.0" in spec


def test_cost_page_calls_out_the_unpriced_model_and_shows_price_sources(monkeypatch, store):
    at = run_page(monkeypatch, store, "page_cost.py")
    assert any("acme-llm-1" in w.value and "14 calls" in w.value for w in at.warning)
    models = at.dataframe[0].value.set_index("model")
    assert models.loc["gpt-4o", "price_sources"].startswith("genai-prices")
    assert models.loc["gpt-4o", "cost_usd"] == pytest.approx(28 * 0.0035)
    assert models.loc["acme-llm-1", "unpriced_calls"] == 14
    assert models.loc["acme-llm-1", "cost_usd"] != models.loc["acme-llm-1", "cost_usd"]  # NaN: unknown
    assert metrics(at)["Spend"] == ("$0.1009", "+94.3%")
    labels = {b.label for b in at.get("download_button")}
    assert labels == {"Download CSV"}


def test_cost_page_projects_month_end_against_the_budget(monkeypatch, store, tmp_path):
    config = tmp_path / "stepscope.toml"
    config.write_text("[budgets]\nmonthly_usd = 0.25\n")
    at = run_page(monkeypatch, store, "page_cost.py", config=config)
    cards = metrics(at)
    # November so far (Nov 2-15) cost $0.15288; half the month has passed
    assert cards["Month to date"][0] == "$0.1529"
    assert cards["Month-end forecast"][0] == "$0.3058"
    assert cards["Monthly budget"] == ("$0.2500", "projected 122% of budget")
    assert any("over budget" in e.value for e in at.error)


def test_reliability_page_shows_the_failure_cluster_with_its_examples(monkeypatch, store):
    at = run_page(monkeypatch, store, "page_reliability.py")
    clusters = at.dataframe[0].value
    first = clusters.iloc[0]
    assert first["failure"] == RATE_LIMIT_MESSAGE.replace("30s", "<NUM>s")
    assert first["count"] == 2
    assert bool(first["new"]) is True
    assert first["error"] == "RateLimitError 429"
    assert "traces?trace=" in markdown_text(at)
    assert metrics(at)["Tool-call success"] == ("92.9%", "-7.14 pp")
    tools = at.dataframe[1].value.set_index("tool")
    assert tools.loc["issue_refund", "calls"] == 28


def test_drift_page_says_a_quiet_period_has_no_drift(monkeypatch, store):
    at = run_page(monkeypatch, store, "page_drift.py")
    assert "No drift" in markdown_text(at)
    assert at.query_params["baseline"] == "2026-11-08T00:00:00Z..2026-11-15T00:00:00Z"
    assert at.query_params["current"] == "2026-11-15T00:00:00Z..2026-11-16T00:00:00Z"


def test_trace_explorer_lists_runs_and_opens_one_from_the_url(monkeypatch, store):
    failed = "00000000000000000000000000000020"  # a run of Nov 13 whose tool call failed
    at = run_page(monkeypatch, store, "page_traces.py", query={"trace": failed})
    runs = at.dataframe[0].value
    assert len(runs) == 42
    steps = at.dataframe[1].value
    assert list(steps["step_kind"]) == ["agent", "llm", "tool"]
    assert list(steps["status_code"]) == ["unset", "unset", "error"]
    assert steps["cost_usd"].iloc[1] == pytest.approx(0.0035)
    assert any("RateLimitError" in e.value and "HTTP 429" in e.value for e in at.error)
    attributes = dict(zip(at.dataframe[2].value["attribute"], at.dataframe[2].value["value"],
                          strict=True))
    assert attributes["http.response.status_code"] == "429"


def test_trace_explorer_filters_by_outcome_from_the_url(monkeypatch, store):
    at = run_page(monkeypatch, store, "page_traces.py",
                  query={"workflow": "refund_request", "outcome": "escalated"})
    runs = at.dataframe[0].value
    assert len(runs) == 7
    assert set(runs["outcome"]) == {"escalated"}
    assert at.sidebar.multiselect[1].value == ["refund_request"]


def test_trace_explorer_shows_a_session_in_order(monkeypatch, store):
    at = run_page(monkeypatch, store, "page_traces.py", query={"user": "user-1"})
    runs = at.dataframe[0].value
    assert set(runs["user_id"]) == {"user-1"}
    assert list(runs["run_start"]) == sorted(runs["run_start"])
    assert "Runs of user user-1, in order" in markdown_text(at)


def test_leaving_the_overview_finds_every_page_already_computed(monkeypatch, tmp_path):
    """After the first view, the other pages' default views are warmed in the background."""
    import threading

    from stepscope.dashboard import data

    db = build_store(tmp_path)
    run_page(monkeypatch, db)
    for thread in threading.enumerate():
        if thread.name == "stepscope-warm":
            thread.join(timeout=120)
    computed = []
    for name, (function, takes_config) in list(data._FUNCTIONS.items()):
        def counting(*args, _name=name, _function=function, **kwargs):
            computed.append(_name)
            return _function(*args, **kwargs)
        monkeypatch.setitem(data._FUNCTIONS, name, (counting, takes_config))
    for page in PAGES[1:]:
        assert not run_page(monkeypatch, db, page).exception
    assert computed == [], f"computed again instead of read from the cache: {computed}"
    # a view nobody asked for before is computed: the count above is not vacuous
    run_page(monkeypatch, db, "page_cost.py", query={"workflow": "kb_answer"})
    assert "kpis" in computed


def test_release_markers_are_one_query_whatever_the_window(monkeypatch, tmp_path):
    """First-seen times do not depend on the window: the Overview's week, Reliability's
    week and its last hour share one computed result."""
    from stepscope.dashboard import data

    db = build_store(tmp_path)
    computed = []
    function, takes_config = data._FUNCTIONS["release_markers"]

    def counting(con, filters, **kwargs):
        if filters.workflows == ("refund_request",):   # not the background warming's
            computed.append(filters)
        return function(con, filters, **kwargs)

    monkeypatch.setitem(data._FUNCTIONS, "release_markers", (counting, takes_config))
    query = {"workflow": "refund_request"}
    at = run_page(monkeypatch, db, "page_reliability.py", query=query)
    assert not at.exception
    assert len(computed) == 1
    assert "billing-agent 1.1.0" in at.get("plotly_chart")[0].proto.spec


@pytest.mark.parametrize("page", ["page_overview.py", "page_cost.py", "page_reliability.py"])
def test_a_page_runs_its_queries_before_drawing_its_body(monkeypatch, tmp_path, page):
    """Every query of a new filter runs before anything below the title is drawn, so the
    browser gets the page in one go rather than laying it out again for each part."""
    import threading

    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from stepscope.analytics.filters import Filters
    from stepscope.dashboard import data

    db = build_store(tmp_path)
    run_page(monkeypatch, db)                    # the filter options and the default view
    for thread in threading.enumerate():
        if thread.name == "stepscope-warm":
            thread.join(timeout=120)
    drawn_at_query: list[int] = []
    for name, (function, takes_config) in list(data._FUNCTIONS.items()):
        def counting(*args, _function=function, **kwargs):
            ctx = get_script_run_ctx()
            filtered = any(isinstance(a, Filters) and a.workflows == ("kb_answer",)
                           for a in (*args, *kwargs.values()))
            if filtered and ctx is not None and ctx.cursors:
                drawn_at_query.append(ctx.cursors[0].index)  # main-area elements so far
            return _function(*args, **kwargs)
        monkeypatch.setitem(data._FUNCTIONS, name, (counting, takes_config))
    at = run_page(monkeypatch, db, page, query={"workflow": "kb_answer"})
    assert not at.exception
    assert drawn_at_query, "a new filter runs queries"
    assert len(set(drawn_at_query)) == 1, drawn_at_query
