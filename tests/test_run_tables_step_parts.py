"""Step-level parts (tool steps, failed steps): built when a query first needs them, kept
up to date with new segments, and giving what the steps themselves give."""

from __future__ import annotations

from datetime import timedelta

from analytics_store import T0, add, llm, make_store, root, tool

from stepscope.analytics import kpis, run_tables, step_kpis
from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.filters import Filters
from stepscope.analytics.parts_cache import CACHE_DIR

FIRST = [root("a", "triage"), llm("a", "c", "gpt-4o"), tool("a", "t1"),
         tool("a", "t2", "refund", error="TimeoutError", message="timed out after 30 s"),
         root("b", "refund", "failed"), tool("b", "t1", "refund", duration_ms=900)]
LATER = T0 + timedelta(hours=1)
SECOND = [root("c", "triage", start=LATER), tool("c", "t1", start=LATER, duration_ms=400),
          tool("c", "t2", "refund", error="TimeoutError", message="timed out after 12 s",
               start=LATER)]


def tables(con) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    return {name for (name,) in rows}


def tools_from_steps(con, workflow=None) -> dict[str, tuple[int, float]]:
    """Calls and median latency per tool, straight from the store's steps."""
    where = "AND r.workflow = $w" if workflow else ""
    rows = con.execute(
        "SELECT s.tool_name, count(*), quantile_cont(s.duration_ms, 0.5) FROM steps s "
        "JOIN (SELECT trace_id, workflow FROM steps WHERE is_root) r USING (trace_id) "
        f"WHERE s.step_kind = 'tool' {where} GROUP BY 1",
        {"w": workflow} if workflow else None).fetchall()
    return {name: (calls, p50) for name, calls, p50 in rows}


def tools_from_kpis(con, **filters) -> dict[str, tuple[int, float]]:
    frame = step_kpis(con, Filters(**filters), by=("tool",))
    return {r["tool"]: (r["calls"], r["latency_p50_ms"]) for r in frame.to_dicts()}


def test_a_kpi_query_leaves_them_out_and_a_step_query_builds_them(tmp_path):
    store = make_store(tmp_path / "db", FIRST)
    with store.connect() as con:
        kpis(con)
        assert not tables(con) & set(run_tables.STEP_PART_TABLES)
        assert tools_from_kpis(con) == tools_from_steps(con)
        assert "tool_parts" in tables(con) and "failed_parts" not in tables(con)
        assert failure_clusters(con).height == 1
        assert {"tool_parts", "failed_parts"} <= tables(con)
    cached = {p.name.rsplit(".", 2)[-2] for p in (store.path / CACHE_DIR).rglob("*.parquet")}
    assert {"tools", "failed"} <= cached


def test_they_follow_new_segments_and_run_filters(tmp_path):
    store = make_store(tmp_path / "db", FIRST)
    with store.connect() as con:
        assert tools_from_kpis(con) == tools_from_steps(con)
        first = failure_clusters(con).to_dicts()
        assert [c["count"] for c in first] == [1]
        add(store, SECOND)
        assert tools_from_kpis(con) == tools_from_steps(con)
        assert tools_from_kpis(con, workflows=("triage",)) == tools_from_steps(con, "triage")
        (cluster,) = failure_clusters(con).to_dicts()
        assert cluster["count"] == 2 and cluster["workflows"] == ["triage"]
        assert failure_clusters(con, Filters(workflows=("refund",))).is_empty()


def test_a_new_reader_gets_the_same_answers_from_the_parts_on_disk(tmp_path):
    store = make_store(tmp_path / "db", FIRST + SECOND)
    with store.connect() as con:
        tools, clusters = tools_from_kpis(con), failure_clusters(con)
    with store.connect() as con:
        assert tools_from_kpis(con) == tools
        assert failure_clusters(con).equals(clusters)
