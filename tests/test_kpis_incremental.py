"""A long-lived connection follows the store: new batches, late roots, compaction and
retention give the same KPIs as a fresh connection would."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from analytics_store import T0, add, llm, make_store, ns, root, tool

from stepscope.analytics import kpis
from stepscope.analytics.explore import cost_breakdown


def same_as_fresh(store, con, by=("workflow",)):
    with store.connect() as fresh:
        expected = kpis(fresh, by=by)
    got = kpis(con, by=by)
    assert got.equals(expected), (got, expected)
    return got


def test_a_root_arriving_later_turns_a_running_run_into_a_finished_one(tmp_path):
    store = make_store(tmp_path / "store", [llm("late", "c1"), tool("late", "t1")])
    with store.connect() as con:
        before = kpis(con).row(0, named=True)
        assert (before["workflow"], before["runs"], before["completion_rate"]) == (None, 1, None)
        add(store, [root("late", "triage", "escalated", duration_ms=7_000)])
        after = same_as_fresh(store, con).row(0, named=True)
    assert (after["workflow"], after["runs"], after["escalation_rate"]) == ("triage", 1, 1.0)
    assert after["latency_p50_ms"] == 7_000.0
    assert after["llm_calls"] == 1 and after["tool_calls"] == 1


def test_batches_compaction_and_retention_keep_the_figures_right(tmp_path):
    store = make_store(tmp_path / "store", [root("a", "triage"), llm("a", "c")])
    with store.connect() as con:
        kpis(con)
        for i in range(4):
            start = T0 + timedelta(days=i)
            add(store, [root(f"r{i}", "refund" if i % 2 else "triage", start=start),
                        llm(f"r{i}", "c", "gpt-4o-mini", start=start)])
            same_as_fresh(store, con)
        add(store, [llm("a", "c2", "gpt-4o-mini")])          # more steps of an old run
        by_workflow = same_as_fresh(store, con)
        assert store.compact(force=True) > 1
        assert same_as_fresh(store, con).equals(by_workflow)
        removed = store.delete_steps_before(ns(T0 + timedelta(days=2)))
        assert removed == 7                   # runs a (3 steps), r0 and r1 (2 each)
        rows = same_as_fresh(store, con)
        assert rows.select(pl.col("runs").sum()).item() == 2
        same_as_fresh(store, con, by=("model",))
        spend = cost_breakdown(con, bucket=None)
        assert spend["llm_calls"].sum() == 2


@pytest.mark.parametrize("by", [("workflow", "day"), ("model",), ("tenant", "week")])
def test_incremental_groupings_equal_fresh_ones(tmp_path, by):
    store = make_store(tmp_path / "store", [root("x", "triage", tenant="acme"), llm("x", "c")])
    with store.connect() as con:
        kpis(con, by=by)
        add(store, [root("y", "triage", tenant="globex", start=T0 + timedelta(days=8)),
                    llm("y", "c", "gpt-4o-mini", start=T0 + timedelta(days=8))])
        same_as_fresh(store, con, by=by)


def test_a_run_split_over_batches_merges_its_parts(tmp_path):
    """Steps in three batches, and a second root span (broken context propagation) in a
    later batch: the run is counted once, with its earliest root."""
    store = make_store(tmp_path / "store", [
        llm("split", "c1", "gpt-4o", start=T0), tool("split", "t1", start=T0)])
    add(store, [root("split", "triage", "completed", start=T0, duration_ms=8_000, user=None)])
    add(store, [llm("split", "c2", "gpt-4o-mini", start=T0),
                root("split", "refund", "failed", start=T0 + timedelta(seconds=3),
                     name="second-root")])
    with store.connect() as con:
        row = kpis(con).row(0, named=True)
        models = kpis(con, by=("model",)).select("model", "runs").rows()
    assert (row["workflow"], row["runs"], row["completed"], row["latency_p50_ms"]) == (
        "triage", 1, 1, 8_000.0)
    assert (row["llm_calls"], row["tool_calls"]) == (2, 1)
    assert row["cost_usd"] == pytest.approx(0.0035 + 0.00021)
    assert models == [("gpt-4o", 1), ("gpt-4o-mini", 1)]
