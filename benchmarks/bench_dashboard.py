"""Benchmark: how long each dashboard page takes to render on a 10M-step store.

    python benchmarks/bench_dashboard.py                        # ./bench-stores/steps-10000000
    python benchmarks/bench_dashboard.py --dir /tmp/bench --steps 1000000

The store is the one `benchmarks/bench_kpis.py` builds (about 30 days of a support-agent
fleet, 5 workflows, ~330k steps a day); it is reused when present and built with that
script's generator when not. Each page runs in Streamlit's AppTest (the page's whole
script: filters, every analytics call, charts), with `--now` at the store's newest
span, three ways:

* cold start: the first view after the app starts (the Overview), which builds the
  analytics' per-run tables on the shared connection, once per store generation; then
  the app warms every page's default view in the background (`dashboard/warm.py`);
* default view: each page as first opened, after that warming;
* fresh filter: the page with a filter value not seen before (a workflow), so every
  query runs again on the warm connection — what a click on a new filter costs;
* cached: the same view again — what navigating back and forth costs.

The target is < 2 s per page; "first" is paid once per new data, not per view.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_kpis import build_store  # noqa: E402

from stepscope.dashboard import launch  # noqa: E402
from stepscope.store import Store  # noqa: E402
from stepscope.timeparse import iso_utc  # noqa: E402

PAGES = ("page_overview.py", "page_cost.py", "page_reliability.py", "page_drift.py",
         "page_traces.py")
APP = str(launch.APP_PATH)
TIMEOUT_S = 600


def newest_span(store: Store) -> str:
    from datetime import UTC, datetime

    with store.connect() as con:
        (newest,) = con.execute("SELECT max(end_time_ns) FROM steps").fetchone()
    return iso_utc(datetime.fromtimestamp(newest / 1e9, UTC))


def run_page(page: str, query: dict[str, str] | None = None) -> float:
    """Seconds for one full run of `page` (the app shell included); fails on an exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    started = time.perf_counter()
    at.run()
    if page != "page_overview.py":
        at.switch_page(page).run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message}")
    return elapsed


def wait_for_warming() -> float:
    started = time.perf_counter()
    for thread in threading.enumerate():
        if thread.name == "stepscope-warm":
            thread.join()
    return time.perf_counter() - started


def bench(workflows: list[str]) -> list[dict[str, object]]:
    cold = run_page("page_overview.py")
    warming = wait_for_warming()
    print(f"cold start (Overview, builds the per-run tables): {cold:.2f} s; "
          f"warming the other pages' default views then took {warming:.2f} s", flush=True)
    rows = []
    for i, page in enumerate(PAGES):
        default = run_page(page)
        fresh = run_page(page, {"workflow": workflows[i % len(workflows)]})
        cached = statistics.median(run_page(page) for _ in range(3))
        rows.append({"page": page.removeprefix("page_").removesuffix(".py"),
                     "default_s": default, "fresh_filter_s": fresh, "cached_s": cached})
        print(f"{rows[-1]['page']:<12} default view {default:6.2f} s   fresh filter {fresh:6.2f} s   "
              f"cached {cached:6.2f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000_000, help="store size in steps")
    parser.add_argument("--dir", default="bench-stores", help="where bench_kpis.py keeps its stores")
    args = parser.parse_args(argv)
    path = Path(args.dir) / f"steps-{args.steps}"
    if not (path / "manifest.json").exists():
        print(f"building {path} ({args.steps:,} steps) with bench_kpis.build_store ...", flush=True)
        build_store(path, args.steps)
    store = Store.open(path)
    now = newest_span(store)
    os.environ.update({"STEPSCOPE_DB": str(path.resolve()), "STEPSCOPE_NOW": now})
    os.environ.pop("STEPSCOPE_CONFIG", None)
    with store.connect() as con:
        workflows = [w for (w,) in con.execute(
            "SELECT DISTINCT workflow FROM steps WHERE is_root AND workflow IS NOT NULL "
            "ORDER BY 1").fetchall()]
    print(f"{store.row_count():,} steps, now = {now}", flush=True)
    rows = bench(workflows)
    worst = max(max(r["default_s"], r["fresh_filter_s"], r["cached_s"]) for r in rows)
    print(f"slowest page after the cold start: {worst:.2f} s (target < 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
