"""Reading only the store segments that hold some runs' steps (drift's model calls): every
step of those runs, including a run split over segments, and nothing is read of the
segments that hold none of them."""

from __future__ import annotations

from datetime import timedelta

from analytics_store import T0, add, llm, make_store, root, tid, tool

from stepscope.analytics import run_tables
from stepscope.config import Config

LATER = T0 + timedelta(hours=1)
FIRST = [root("a", "triage"), llm("a", "c1", "gpt-4o"), tool("a", "t1"),
         root("b", "refund"), llm("b", "c1", "gpt-4o-mini")]
# Run "a" gets one more step in the second batch: a run split over two segments.
SECOND = [root("c", "refund", start=LATER), llm("c", "c1", "gpt-4o", start=LATER),
          tool("a", "t2", start=LATER)]


def steps_in(con, source: str, traces: list[str]) -> dict[str, int]:
    """Steps per trace of `traces` in the step source."""
    wanted = ", ".join(f"'{tid(t)}'" for t in traces)
    rows = con.execute(f"SELECT trace_id, count(*) FROM {source} s "
                       f"WHERE s.trace_id IN ({wanted}) GROUP BY 1").fetchall()
    return dict(rows)


def segments_of(con, workflow: str) -> list[int] | None:
    return run_tables.segments_of_runs(
        con, "SELECT r.trace_id FROM run_facts r WHERE r.workflow = $w", {"w": workflow})


def test_only_the_segments_of_the_selected_runs_are_read(tmp_path):
    store = make_store(tmp_path / "db", FIRST)
    add(store, SECOND)
    with store.connect() as con:
        assert run_tables.segments_of_runs(con, "SELECT 'x' AS trace_id") is None  # not built
        run_tables.prepare(con, Config())
        every = steps_in(con, "steps", ["a", "b", "c"])
        assert every == {tid("a"): 4, tid("b"): 2, tid("c"): 2}

        triage = segments_of(con, "triage")          # run a: both segments
        assert len(triage) == 2
        assert steps_in(con, run_tables.segment_steps(con, triage), ["a"]) == {tid("a"): 4}

        refund = segments_of(con, "refund")          # runs b and c: both segments
        assert refund == triage
        later = run_tables.segments_of_runs(
            con, "SELECT r.trace_id FROM run_facts r WHERE r.run_start >= $t", {"t": LATER})
        assert len(later) == 1                       # run c alone: the second segment
        source = run_tables.segment_steps(con, later)
        assert steps_in(con, source, ["a", "b", "c"]) == {tid("a"): 1, tid("c"): 2}


def test_no_runs_read_nothing_and_none_reads_the_store(tmp_path):
    store = make_store(tmp_path / "db", FIRST)
    with store.connect() as con:
        run_tables.prepare(con, Config())
        assert segments_of(con, "no such workflow") == []
        assert steps_in(con, run_tables.segment_steps(con, []), ["a", "b"]) == {}
        assert steps_in(con, run_tables.segment_steps(con, None), ["a", "b"]) == \
            {tid("a"): 3, tid("b"): 2}
        assert run_tables.segment_condition([], "s") == "FALSE"
        assert run_tables.segment_condition(None, "s") == "TRUE"
        assert run_tables.segment_condition([3, 1], "s") == "s.segment IN (3, 1)"
