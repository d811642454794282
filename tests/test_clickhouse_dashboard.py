"""The dashboard unchanged on a ClickHouse store: every page, the same figures.

The dashboard fixture's payloads go into an embedded store and a ClickHouse store
(chdb) through the same ingest; every page runs with Streamlit's AppTest on both.
"""

from __future__ import annotations

import pytest
from clickhouse_support import chdb_url
from dashboard_fixture import PAGES, build_store, markdown_text, metrics, run_page


@pytest.fixture(scope="module")
def stores(tmp_path_factory, chdb_root):
    duck = build_store(tmp_path_factory.mktemp("dash-duck"))
    click = build_store(tmp_path_factory.mktemp("dash-click"), db=chdb_url(chdb_root, "dashboard"))
    return duck, click, tmp_path_factory.mktemp("dash-cwd")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_the_same_on_clickhouse(monkeypatch, stores, page) -> None:
    duck, click, cwd = stores
    expected = run_page(monkeypatch, duck, page)
    actual = run_page(monkeypatch, click, page, cwd=cwd)
    assert not actual.exception, [e.message for e in actual.exception]
    assert metrics(actual) == metrics(expected)
    # The same text, but for the store's name where a page mentions it.
    assert markdown_text(actual).replace(click, "DB") == markdown_text(expected).replace(str(duck), "DB")
    assert len(actual.get("plotly_chart")) == len(expected.get("plotly_chart"))
    for ours, theirs in zip(actual.dataframe, expected.dataframe, strict=True):
        assert ours.value.shape == theirs.value.shape
