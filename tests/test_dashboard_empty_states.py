"""An empty store, a single workflow and no cost data each show a clear empty state."""

from __future__ import annotations

import pytest
from dashboard_fixture import PAGES, build_store, markdown_text, no_cost_store, run_page

from stepscope.store import Store


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_store_says_how_to_load_traces_on_every_page(monkeypatch, tmp_path, page):
    db = Store.open(tmp_path / "empty", create=True).path
    at = run_page(monkeypatch, db, page)
    assert not at.exception
    text = markdown_text(at)
    assert "No traces yet" in text
    assert f"stepscope ingest PATH --db {db}" in text


def test_a_missing_store_is_an_empty_state_too(monkeypatch, tmp_path):
    at = run_page(monkeypatch, tmp_path / "not-yet")
    assert not at.exception
    assert "No traces yet" in markdown_text(at)


def test_a_directory_that_is_not_a_store_is_named(monkeypatch, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    at = run_page(monkeypatch, other)
    assert not at.exception
    assert "not a store stepscope can read" in markdown_text(at)


@pytest.fixture(scope="module")
def single_workflow(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("single"), workflows=("kb_answer",))


@pytest.mark.parametrize("page", PAGES)
def test_a_single_workflow_renders_every_page(monkeypatch, single_workflow, page):
    at = run_page(monkeypatch, single_workflow, page)
    assert not at.exception, [e.message for e in at.exception]


def test_a_single_workflow_overview_says_so(monkeypatch, single_workflow):
    text = markdown_text(run_page(monkeypatch, single_workflow))
    assert "kb_answer" in text and "refund_request" not in text
    assert any("Only one workflow" in c.value for c in run_page(monkeypatch, single_workflow).caption)


def test_a_range_with_no_runs_is_an_empty_state(monkeypatch, single_workflow):
    at = run_page(monkeypatch, single_workflow, query={"range": "2026-01-01T00:00:00Z..2026-01-08T00:00:00Z"})
    assert not at.exception
    assert "No runs in this range" in markdown_text(at)


@pytest.fixture(scope="module")
def tools_only(tmp_path_factory):
    return no_cost_store(tmp_path_factory.mktemp("nocost"))


@pytest.mark.parametrize("page", PAGES)
def test_no_cost_data_renders_every_page(monkeypatch, tools_only, page):
    at = run_page(monkeypatch, tools_only, page)
    assert not at.exception, [e.message for e in at.exception]


def test_no_cost_data_is_explained_on_the_cost_page(monkeypatch, tools_only):
    at = run_page(monkeypatch, tools_only, "page_cost.py")
    text = markdown_text(at)
    assert "No cost data" in text
    assert "gen_ai.usage" in text
