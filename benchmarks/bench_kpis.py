"""Benchmark: per-workflow KPIs and the `--by workflow,day` series on 1M and 10M steps.

    python benchmarks/bench_kpis.py                    # 1M and 10M steps, stores in ./bench-stores
    python benchmarks/bench_kpis.py --steps 1000000    # one size
    python benchmarks/bench_kpis.py --dir /tmp/stores --rebuild

The stores hold about 30 days of a support-agent fleet at ~330k steps a day, generated
directly as steps-table rows with DuckDB SQL and stored through `Store.append_steps` in
chunks of about a million steps: runs of 5 to 11 steps (8 on average: the root span,
chat calls and tool calls, some embeddings), 5 workflows, 6 models (one without a
price), 20 tenants, two service versions, outcomes with failures and escalations, a
few runs still running. The figures reported:

* build: generating and storing the steps (not a query figure);
* cold: the first query on a fresh connection, which prices the model calls and builds
  the per-run tables (stepscope.analytics.run_tables): once computing every segment's
  parts (the first reader ever), once reading them from disk (what a one-shot CLI call
  pays afterwards);
* warm: the queries again on that connection — what the dashboard and `alerts run`
  pay, since they keep their connection; the targets are < 1 s for all per-workflow
  KPIs and < 3 s for the `--by workflow,day` series at 10M steps;
* live: the next call after one more ingest batch of ~10k steps (only its runs are
  merged again).

Figures are wall-clock seconds with the process's CPU seconds (all threads) beside
them: on a machine shared with other work the CPU figure shows the work itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from stepscope.analytics import Filters, kpi_series, kpis, step_kpis
from stepscope.analytics.parts_cache import CACHE_DIR
from stepscope.config import Config
from stepscope.schema import STEP_COLUMNS
from stepscope.store import Store

STEPS_PER_RUN = 8          # on average: 5 + (h % 7)
STEPS_PER_DAY = 330_000
CHUNK_RUNS = 125_000       # about 1M steps per stored segment
START = datetime(2026, 10, 1, tzinfo=UTC)

# Everything the generator sets; other columns are NULL.
_GENERATED = """
    md5('run-' || CAST(r AS VARCHAR)) AS trace_id,
    substr(md5('span-' || CAST(r AS VARCHAR) || '-' || CAST(j AS VARCHAR)), 1, 16) AS span_id,
    CASE WHEN j = 0 THEN NULL
         ELSE substr(md5('span-' || CAST(r AS VARCHAR) || '-0'), 1, 16) END AS parent_span_id,
    j = 0 AS is_root,
    t0 + j * 250000000 AS start_time_ns,
    t0 + j * 250000000 + CAST(dur_ms * 1000000 AS BIGINT) AS end_time_ns,
    make_timestamp((t0 + j * 250000000) // 1000) AS start_time,
    dur_ms AS duration_ms,
    CASE WHEN j = 0 THEN workflow WHEN kind = 'tool' THEN 'execute_tool ' || tool
         ELSE 'chat ' || model END AS name,
    CASE WHEN j = 0 THEN 'server' ELSE 'client' END AS span_kind,
    kind AS step_kind,
    CASE WHEN kind = 'tool' THEN 'execute_tool' WHEN kind = 'llm' THEN 'chat'
         WHEN kind = 'embedding' THEN 'embeddings' END AS operation,
    CASE WHEN err THEN 'error' ELSE 'unset' END AS status_code,
    CASE WHEN err THEN 'RateLimitError' END AS error_type,
    CASE WHEN err THEN 'Error code: 429 - rate limit reached for requests' END AS error_message,
    'support-agent' AS service_name,
    CASE WHEN t0 < mid_ns THEN '1.0.0' ELSE '1.1.0' END AS service_version,
    'production' AS environment,
    CASE WHEN kind IN ('llm', 'embedding') THEN model END AS request_model,
    CASE WHEN kind IN ('llm', 'embedding') THEN model END AS response_model,
    CASE WHEN kind IN ('llm', 'embedding') THEN provider END AS provider,
    CASE WHEN kind = 'llm' THEN 300 + CAST(h2 % 4000 AS BIGINT)
         WHEN kind = 'embedding' THEN 50 + CAST(h2 % 300 AS BIGINT) END AS input_tokens,
    CASE WHEN kind = 'llm' THEN 20 + CAST(h2 % 600 AS BIGINT) END AS output_tokens,
    CASE WHEN kind = 'llm' THEN CAST(h2 % 3 AS BIGINT) * 100 END AS cached_input_tokens,
    CASE WHEN kind = 'llm' AND h2 % 2 = 0 THEN 150.0 + CAST(h2 % 900 AS DOUBLE) END AS ttft_ms,
    CASE WHEN kind = 'llm' THEN 'stop' END AS finish_reason,
    CASE WHEN kind = 'tool' THEN tool END AS tool_name,
    CASE WHEN j = 0 THEN workflow END AS workflow,
    CASE WHEN j = 0 THEN outcome END AS outcome,
    CASE WHEN j = 0 THEN 'attribute' END AS outcome_source,
    CASE WHEN j = 0 THEN 'tenant-' || CAST(h % 20 AS VARCHAR) END AS tenant_id,
    'session-' || CAST(r // 3 AS VARCHAR) AS session_id,
    CASE WHEN j = 0 THEN 'user-' || CAST(h % 5000 AS VARCHAR) END AS user_id,
    MAP {} :: MAP(VARCHAR, VARCHAR) AS attributes,
    MAP {} :: MAP(VARCHAR, VARCHAR) AS resource_attributes,
    'bench' AS source_file,
    0 AS source_batch,
    TIMESTAMP '2026-11-01 00:00:00' AS ingested_at
"""

_RUNS = """
WITH runs AS (
    SELECT
        r,
        hash(r) AS h,
        {start_ns} + CAST(r AS BIGINT) * {spacing_ns} + CAST(hash(r, 'j') % {spacing_ns} AS BIGINT) AS t0,
        5 + CAST(hash(r) % 7 AS INTEGER) AS n_steps,
        ['ticket_triage', 'ticket_triage', 'ticket_triage', 'refund_request', 'refund_request',
         'kb_answer', 'kb_answer', 'kb_answer', 'order_status', 'account_update']
            [1 + CAST(hash(r, 'w') % 10 AS INTEGER)] AS workflow,
        CASE WHEN hash(r, 'o') % 100 < 80 THEN 'completed'
             WHEN hash(r, 'o') % 100 < 90 THEN 'escalated'
             WHEN hash(r, 'o') % 100 < 98 THEN 'failed' ELSE 'unknown' END AS outcome,
        r % 997 = 0 AS running
    FROM range({lo}, {hi}) t(r)
),
steps AS (
    SELECT
        runs.*, j,
        hash(r, j) AS h2,
        CASE WHEN j = 0 THEN 'workflow'
             WHEN j = 1 AND hash(r, 'e') % 5 = 0 THEN 'embedding'
             WHEN j % 2 = 1 THEN 'llm' ELSE 'tool' END AS kind
    FROM runs, range(0, 11) s(j)
    WHERE j < n_steps AND NOT (j = 0 AND running)
),
shaped AS (
    SELECT
        steps.*,
        {mid_ns} AS mid_ns,
        CASE WHEN kind = 'embedding' THEN 'text-embedding-3-small'
             ELSE ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4-5-20250929',
                   'claude-3-5-haiku-20241022', 'acme-ft-support-v3']
                  [1 + CAST(h2 % 6 AS INTEGER)] END AS model,
        ['add_note', 'lookup_order', 'search_kb', 'issue_refund', 'send_email']
            [1 + CAST(h2 % 5 AS INTEGER)] AS tool,
        CASE WHEN j = 0 THEN CAST(n_steps * 250 + 1500 + h % 20000 AS DOUBLE)
             WHEN kind = 'tool' THEN CAST(50 + h2 % 800 AS DOUBLE)
             ELSE CAST(300 + h2 % 4000 AS DOUBLE) END AS dur_ms,
        (kind = 'tool' AND h2 % 100 < 3) OR (kind = 'llm' AND h2 % 100 < 2)
            OR (j = 0 AND outcome = 'failed' AND h % 2 = 0) AS err
    FROM steps
)
SELECT {columns}
FROM (SELECT shaped.*,
             CASE WHEN model LIKE 'claude%' THEN 'anthropic'
                  WHEN model LIKE 'acme%' THEN 'acme' ELSE 'openai' END AS provider
      FROM shaped)
"""


def _select_list() -> str:
    """The generated expressions in steps-table column order; NULL for the rest."""
    by_name = {}
    for part in _split_top_level(_GENERATED):
        if part.strip():
            expr, name = part.strip().rsplit(" AS ", 1)
            by_name[name.strip()] = f"{expr} AS {name.strip()}"
    return ",\n    ".join(
        by_name.get(c.name, f"CAST(NULL AS {c.sql_type}) AS {c.name}") for c in STEP_COLUMNS
    )


def _split_top_level(text: str) -> list[str]:
    """Split a select list on commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch in "([{":
            depth += 1
        elif not quote and ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _layout(n_steps: int) -> dict[str, int]:
    n_runs = n_steps // STEPS_PER_RUN
    days = n_steps / STEPS_PER_DAY
    start_ns = int(START.timestamp()) * 1_000_000_000
    return {"n_runs": n_runs, "start_ns": start_ns,
            "spacing_ns": int(days * 86_400 * 1e9 / n_runs),
            "mid_ns": start_ns + int(days * 86_400 * 1e9 / 2)}


def runs_table(con: duckdb.DuckDBPyConnection, n_steps: int, lo: int, hi: int):
    """Steps of runs lo..hi of a store laid out for `n_steps` (runs past the end continue
    the timeline, like new traffic)."""
    layout = _layout(n_steps)
    sql = _RUNS.format(start_ns=layout["start_ns"], spacing_ns=layout["spacing_ns"], lo=lo,
                       hi=hi, mid_ns=layout["mid_ns"], columns=_select_list())
    return con.sql(sql).to_arrow_table()


def build_store(path: Path, n_steps: int) -> Store:
    """A store of about `n_steps` steps over ~n_steps / 330k days, written in chunks."""
    if path.exists():
        shutil.rmtree(path)
    store = Store.open(path, create=True)
    n_runs = _layout(n_steps)["n_runs"]
    con = duckdb.connect()
    for lo in range(0, n_runs, CHUNK_RUNS):
        store.append_steps(runs_table(con, n_steps, lo, min(lo + CHUNK_RUNS, n_runs)),
                           compact=False)
    con.close()
    return store


def _time(fn, repeat: int = 5) -> tuple[float, float, float]:
    """(first call, median of the next `repeat` calls, CPU seconds of a warm call).

    CPU time sums DuckDB's threads, so on a shared machine it shows the work done even
    when other processes stretch the wall-clock figures.
    """
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return first, statistics.median(walls), statistics.median(cpus)


QUERIES = {
    "kpis --by workflow": lambda con, config: kpis(con, Filters(), ("workflow",), config),
    "series --by workflow,day": lambda con, config: kpi_series(
        con, Filters(), "day", ("workflow",), config),
    "kpis --by workflow,week": lambda con, config: kpis(
        con, Filters(), ("workflow", "week"), config),
    "kpis --workflow X --by day": lambda con, config: kpis(
        con, Filters(workflows=("refund_request",)), ("day",), config),
    "kpis --by model": lambda con, config: kpis(con, Filters(), ("model",), config),
    "kpis --steps --by tool": lambda con, config: step_kpis(con, Filters(), ("tool",), config),
    "kpis --steps --by model": lambda con, config: step_kpis(con, Filters(), ("model",), config),
}
LIVE_BATCH_RUNS = 1_250     # about 10,000 steps, one ingest batch of a busy service


def bench(path: Path, n_steps: int, rebuild: bool) -> dict[str, tuple[float, float]]:
    """{figure: (wall seconds, CPU seconds)} for a store of `n_steps`."""
    figures: dict[str, tuple[float, float]] = {}
    if rebuild or not (path / "manifest.json").exists():
        t = time.perf_counter()
        build_store(path, n_steps)
        figures["build the store (not a query)"] = (time.perf_counter() - t, float("nan"))
    config = Config()
    store = Store.open(path)
    shutil.rmtree(path / CACHE_DIR, ignore_errors=True)
    with store.connect() as con:
        figures["cold: first reader, computes the parts and keeps them on disk"] = _first_call(
            con, config)
    with store.connect() as con:
        figures["cold: next reader, parts read from disk"] = _first_call(con, config)
        for name, query in QUERIES.items():
            repeat = 2 if "--steps" in name else 5
            _, wall, cpu = _time(lambda q=query: q(con, config), repeat)
            figures[f"warm: {name}"] = (wall, cpu)
    figures["live: next kpis call after a 10k-step batch"] = _live_update(path, n_steps, config)
    return figures


def _first_call(con, config: Config) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    kpis(con, Filters(), ("workflow",), config)
    return time.perf_counter() - t, time.process_time() - c


def _live_update(path: Path, n_steps: int, config: Config) -> tuple[float, float]:
    """Append one batch to a hard-linked copy of the store (segments are immutable, the
    manifest is replaced, so the original is untouched) and time the update."""
    copy = path.with_name(path.name + "-live")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy, copy_function=os.link)
    try:
        store = Store.open(copy)
        with store.connect() as con:
            kpis(con, Filters(), ("workflow",), config)
            n_runs = _layout(n_steps)["n_runs"]
            gen = duckdb.connect()
            store.append_steps(runs_table(gen, n_steps, n_runs, n_runs + LIVE_BATCH_RUNS),
                               compact=False)
            gen.close()
            t, c = time.perf_counter(), time.process_time()
            kpis(con, Filters(), ("workflow",), config)
            return time.perf_counter() - t, time.process_time() - c
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, action="append",
                        help="store size in steps (repeatable; default 1M and 10M)")
    parser.add_argument("--dir", default="bench-stores", help="where the stores are kept")
    parser.add_argument("--rebuild", action="store_true", help="regenerate existing stores")
    args = parser.parse_args(argv)
    sizes = args.steps or [1_000_000, 10_000_000]
    load = os.getloadavg()[0]
    results = {n: bench(Path(args.dir) / f"steps-{n}", n, args.rebuild) for n in sizes}
    names = list(dict.fromkeys(k for r in results.values() for k in r))
    header = ["figure", *(f"{n / 1e6:g}M wall s (cpu s)" for n in sizes)]
    if len(sizes) > 1:
        header.append(f"x for x{sizes[-1] / sizes[0]:g} steps")
    rows = []
    for name in names:
        cells = [name]
        for n in sizes:
            wall, cpu = results[n].get(name, (float("nan"), float("nan")))
            cells.append(f"{wall:.3f}" + ("" if cpu != cpu else f" ({cpu:.2f})"))
        if len(sizes) > 1 and name in results[sizes[0]] and name in results[sizes[-1]]:
            cells.append(f"{results[sizes[-1]][name][0] / results[sizes[0]][name][0]:.1f}")
        rows.append(cells)
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
