"""Benchmark: the analytics on ClickHouse (chdb) against DuckDB, at a million steps.

    python benchmarks/bench_clickhouse.py                    # 1M steps in ./bench-stores
    python benchmarks/bench_clickhouse.py --steps 200000 --dir /tmp/stores --rebuild

The embedded store is bench_kpis.py's (generated steps of a support-agent fleet, ~330k
steps a day); the same rows are written into a ClickHouse store on chdb, the ClickHouse
engine in this process, through `ClickHouseStore.append_steps` in batches of 100,000
(each batch checked for stored spans, then inserted with its deduplication token), as
`stepscope serve` and `stepscope ingest` write. Then:

* writes: spans per second and per CPU-second of that load; then every batch again from
  two writers (two sessions) at once, interleaved, which must store nothing;
* equivalence: every analytics function the commands, the dashboard and alerts call
  (KPIs, series, step KPIs, spend, traces, clusters, drift, alert windows, the weekly
  report) gives the same rows on both stores, floats to a relative 1e-9;
* speed: the first call on a new connection (which builds the run tables) and the warm
  calls after it, on each engine, wall-clock seconds with CPU seconds beside them.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from bench_kpis import build_store
from polars.testing import assert_frame_equal

from stepscope.analytics import Filters, kpi_series, kpis, step_kpis
from stepscope.analytics.alert_queries import windowed_kpis
from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.drift import drift_findings
from stepscope.analytics.explore import cost_breakdown, find_traces, store_extent, trace_steps
from stepscope.analytics.report import weekly_report
from stepscope.store import Store
from stepscope.stores import open_store
from stepscope.timeparse import Window

BATCH_ROWS = 100_000
RELATIVE_TOLERANCE, ABSOLUTE_TOLERANCE = 1e-9, 2e-11


def queries(now) -> dict[str, Any]:
    day = timedelta(days=1)
    last_day = Filters(since=now - day, until=now)
    windows = [Window(now - timedelta(hours=h + 1), now - timedelta(hours=h)) for h in range(24)]
    return {
        "kpis --by workflow": lambda con: kpis(con, None, ("workflow",)),
        "kpis --by workflow,day": lambda con: kpis(con, None, ("workflow", "day")),
        "series: one workflow per hour": lambda con: kpi_series(
            con, Filters(workflows=("refund_request",)), "hour", ()),
        "kpis --by model": lambda con: kpis(con, None, ("model",)),
        "kpis --steps --by tool": lambda con: step_kpis(con, None, ("tool",)),
        "kpis --steps --by model": lambda con: step_kpis(con, None, ("model",)),
        "spend --by model, per day": lambda con: cost_breakdown(con, None, "model", "day"),
        "spend --by tenant, last day": lambda con: cost_breakdown(con, last_day, "tenant", None),
        "traces: costliest 50": lambda con: find_traces(con, None, order="cost", limit=50),
        "trace waterfall": lambda con: trace_steps(
            con, find_traces(con, None, order="cost", limit=1)["trace_id"][0]),
        "clusters: last day": lambda con: failure_clusters(con, last_day, now=now),
        "drift: last day vs the week before": lambda con: drift_findings(con, now=now),
        "alert windows: 24 hourly KPIs": lambda con: windowed_kpis(con, windows),
        "weekly report": lambda con: vars(weekly_report(con, _week_label(now - day))),
    }


def _week_label(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def load_clickhouse(embedded: Store, url: str) -> dict[str, float]:
    """Write the embedded store's rows into a new ClickHouse store; then all again, twice,
    from two writers at once (nothing more may be stored)."""
    store = open_store(url, create=True)
    files = embedded.segment_files()
    rows = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in _batches(files):
        rows += store.append_steps(batch).stored
    figures = {"rows": rows, "write_s": time.perf_counter() - wall, "write_cpu_s": time.process_time() - cpu}
    writers = [store, open_store(url)]
    again: list[int] = []

    def write_all(writer, order) -> None:
        again.append(sum(writer.append_steps(b).stored for b in _batches(files[::order])))

    wall = time.perf_counter()
    threads = [threading.Thread(target=write_all, args=(w, o)) for w, o in zip(writers, (1, -1), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures["rewrite_s"] = time.perf_counter() - wall
    figures["rewrite_stored"] = sum(again)
    figures["rows_after"] = store.row_count()
    return figures


def _batches(files: list[str]):
    """The embedded store's rows in batches, without its own key column."""
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(BATCH_ROWS):
            yield pa.Table.from_batches([batch]).drop_columns(["span_key"])


def timed(fn, con, repeat: int = 3) -> tuple[Any, float, float, float]:
    """(result, first call s, median warm s, median warm CPU s)."""
    t = time.perf_counter()
    result = fn(con)
    first = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn(con)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return result, first, statistics.median(walls), statistics.median(cpus)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, pl.DataFrame):
        try:
            assert_frame_equal(a, b, check_exact=False, rel_tol=RELATIVE_TOLERANCE,
                               abs_tol=ABSOLUTE_TOLERANCE)
        except AssertionError:
            return False
        return True
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="store size in steps")
    parser.add_argument("--dir", default="bench-stores", help="where the stores are kept")
    parser.add_argument("--rebuild", action="store_true", help="regenerate existing stores")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    duck_path = root / f"steps-{args.steps}"
    if args.rebuild or not (duck_path / "manifest.json").exists():
        build_store(duck_path, args.steps)
    embedded = Store.open(duck_path)
    chdb_dir = root / f"chdb-{args.steps}"
    shutil.rmtree(chdb_dir, ignore_errors=True)
    url = f"chdb://{chdb_dir}?database=bench"
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    writes = load_clickhouse(embedded, url)
    rows = writes["rows"]
    print(f"write {rows:,} steps: {writes['write_s']:.1f} s, {rows / writes['write_s']:,.0f} steps/s, "
          f"{rows / writes['write_cpu_s']:,.0f} steps per CPU-second of this process "
          "(chdb's own threads included)")
    print(f"everything again from two writers at once: {writes['rewrite_s']:.1f} s, "
          f"{writes['rewrite_stored']} stored, {writes['rows_after']:,} rows after "
          f"({'no duplicate' if writes['rows_after'] == rows else 'DUPLICATES'})")
    with embedded.connect() as duck, open_store(url).connect() as click:
        now = datetime.fromtimestamp(store_extent(duck)[0] // 1_000_000_000, UTC)
        print("| query | DuckDB first | DuckDB warm (cpu) | ClickHouse first "
              "| ClickHouse warm (cpu) | same |")
        print("|---|---:|---:|---:|---:|---|")
        failures = 0
        for name, fn in queries(now).items():
            a, d_first, d_warm, d_cpu = timed(fn, duck)
            b, c_first, c_warm, c_cpu = timed(fn, click)
            equal = same(a, b)
            failures += not equal
            print(f"| {name} | {d_first:.2f} | {d_warm:.3f} ({d_cpu:.2f}) | {c_first:.2f} | "
                  f"{c_warm:.3f} ({c_cpu:.2f}) | {'yes' if equal else 'NO'} |")
    return 1 if failures or writes["rows_after"] != rows else 0


if __name__ == "__main__":
    sys.exit(main())
