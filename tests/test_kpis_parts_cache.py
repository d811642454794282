"""Run-table parts kept on disk: a new reader reads them instead of the steps, and gets
the same figures; damaged files, other prices and read-only stores are handled."""

from __future__ import annotations

import os

import duckdb
import pytest
from analytics_store import add, llm, make_store, root, tool

from stepscope.analytics import kpis
from stepscope.analytics.parts_cache import CACHE_DIR, ENV_SWITCH
from stepscope.config import config_from_dict

SPECS = [root("a", "triage"), llm("a", "c", "gpt-4o"), tool("a", "t"),
         root("b", "refund", "failed"), llm("b", "c", "acme-ft", provider=None)]


def cache_files(store, kind=""):
    return sorted(p.name for p in (store.path / CACHE_DIR).rglob("*.parquet") if kind in p.name)


def fresh_kpis(store, **kwargs):
    with store.connect() as con:
        return kpis(con, **kwargs)


def test_a_second_reader_uses_the_parts_on_disk(tmp_path):
    store = make_store(tmp_path / "store", SPECS)
    first = fresh_kpis(store)
    (segment,) = store.segment_files()
    names = cache_files(store)
    assert all(n.startswith(os.path.basename(segment)) for n in names)
    kinds = sorted(n.split(".parquet.")[1].split("-")[0].removesuffix(".parquet") for n in names)
    assert kinds == ["cost", "keys", "models", "run"]   # step-level parts only when asked for
    # empty the segment behind the store's back (same columns, no rows): only the parts
    # on disk can still give its runs' figures
    original = segment + ".original"
    os.rename(segment, original)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{original}') LIMIT 0) TO '{segment}' "
                "(FORMAT parquet)")
    try:
        assert fresh_kpis(store).equals(first)
    finally:
        os.replace(original, segment)


def test_damaged_parts_are_computed_again(tmp_path):
    store = make_store(tmp_path / "store", SPECS)
    first = fresh_kpis(store)
    for path in (store.path / CACHE_DIR).rglob("*.run-*.parquet"):
        path.write_bytes(b"not parquet")
    assert fresh_kpis(store).equals(first)
    for path in (store.path / CACHE_DIR).rglob("*.run-*.parquet"):
        assert path.read_bytes().startswith(b"PAR1")


def test_other_prices_have_parts_of_their_own(tmp_path):
    store = make_store(tmp_path / "store", SPECS)
    fresh_kpis(store)
    negotiated = config_from_dict({"prices": [{"match": "acme-ft", "input_per_mtok": 1.0,
                                               "output_per_mtok": 10.0}]})
    refund = fresh_kpis(store, config=negotiated).filter(workflow="refund").row(0, named=True)
    assert refund["cost_usd"] == pytest.approx(0.002)
    assert len(cache_files(store, ".cost-")) == 2
    assert fresh_kpis(store).filter(workflow="refund")["cost_usd"].item() is None


def test_new_segments_add_their_own_parts(tmp_path):
    store = make_store(tmp_path / "store", SPECS)
    fresh_kpis(store)
    add(store, [root("c", "triage"), llm("c", "c", "gpt-4o-mini")])
    assert fresh_kpis(store).filter(workflow="triage")["runs"].item() == 2
    assert len(cache_files(store, ".keys")) == 2


def test_switched_off_means_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "off")
    store = make_store(tmp_path / "store", SPECS)
    assert fresh_kpis(store).height == 2
    assert not (store.path / CACHE_DIR).exists()


def test_a_store_where_the_cache_cannot_be_written_still_answers(tmp_path):
    store = make_store(tmp_path / "store", SPECS)
    (store.path / CACHE_DIR).write_text("not a directory")
    assert fresh_kpis(store).height == 2
