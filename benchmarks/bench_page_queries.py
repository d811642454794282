"""Benchmark: the dashboard pages' analytics queries one by one, with a fresh filter.

    python benchmarks/bench_page_queries.py                   # ./bench-stores/steps-10000000
    python benchmarks/bench_page_queries.py --dir /tmp/bench --steps 1000000

Reuses the store `bench_kpis.py` builds. On one connection it first brings the run
tables up to date (read from the parts on disk when a reader has been there before),
then the step-level part tables, timing each; then, for two workflows in turn (each a
filter no query has seen), every query the Overview, Cost, Reliability and Drift pages
run for a 7-day window, as wall-clock seconds with the process's CPU seconds. This is
the part of a page view that `bench_dashboard.py` cannot separate from Streamlit and
the browser. The connection's memory is printed at the end.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from stepscope.analytics import kpi_series, kpis, step_kpis
from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.drift import drift_findings
from stepscope.analytics.explore import cost_breakdown, release_markers, top_cost_traces
from stepscope.analytics.filters import Filters
from stepscope.analytics.run_tables import STEP_PART_TABLES, prepare
from stepscope.config import Config
from stepscope.store import Store
from stepscope.timeparse import to_utc


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, call: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    print(f"| {label} | {time.perf_counter() - wall:.3f} ({cpu_seconds() - cpu:.2f}) |", flush=True)
    return result


def page_queries(con, config: Config, workflow: str, now) -> list[tuple[str, Callable[[], Any]]]:
    """What the pages ask for one workflow: a 7-day window, and the last hour."""
    week = Filters(since=now - timedelta(days=7), until=now, workflows=(workflow,))
    hour = Filters(since=now - timedelta(hours=1), until=now, workflows=(workflow,))
    return [
        ("kpis", lambda: kpis(con, week, by=(), config=config)),
        ("kpi_series by workflow, day", lambda: kpi_series(
            con, week, bucket="day", by=("workflow",), config=config)),
        ("release_markers", lambda: release_markers(con, week, config=config)),
        ("failure_clusters, 7 days", lambda: failure_clusters(con, week, now=now, config=config)),
        ("failure_clusters, last hour", lambda: failure_clusters(con, hour, now=now, config=config)),
        ("step_kpis by tool", lambda: step_kpis(con, week, by=("tool",), config=config)),
        ("cost_breakdown by model", lambda: cost_breakdown(con, week, by=("model",), config=config)),
        ("top_cost_traces", lambda: top_cost_traces(con, week, config=config)),
        ("drift_findings", lambda: drift_findings(
            con, filters=Filters(workflows=(workflow,)), now=now, config=config)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="bench-stores", help="where bench_kpis.py keeps its stores")
    parser.add_argument("--steps", type=int, default=10_000_000, help="store size in steps")
    args = parser.parse_args()
    store = Store(Path(args.dir) / f"steps-{args.steps}")
    if not store.exists:
        raise SystemExit(f"no store at {store.path}: run benchmarks/bench_kpis.py first")
    config = Config()
    con = store.connect()
    print("| query | wall s (CPU s) |\n|---|---|")
    timed("run tables (cold connection)", lambda: prepare(con, config))
    for table in STEP_PART_TABLES:
        timed(f"step-level part table `{table}`", lambda t=table: prepare(con, config, needs=(t,)))
    newest = con.execute("SELECT max(start_time) FROM steps").fetchall()[0][0]
    now = to_utc(newest)
    workflows = [w for (w,) in con.execute(
        "SELECT DISTINCT workflow FROM run_facts WHERE workflow IS NOT NULL ORDER BY 1").fetchall()]
    for workflow in workflows[:2]:
        for label, call in page_queries(con, config, workflow, now):
            timed(f"{workflow}: {label}", call)
    (memory,) = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0]
    print(f"\nconnection memory {memory / 2**20:,.0f} MiB; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
