"""Failure-cluster benchmark: 1,000,000 failed steps clustered, time and peak memory.

    python benchmarks/bench_clusters.py                      # 1M failed steps
    python benchmarks/bench_clusters.py --failed 100000 --failed 1000000
    python benchmarks/bench_clusters.py --db /tmp/failures   # keep (and reuse) the store

Builds a store of failed steps as production produces them: 40 kinds of failure whose
messages carry request ids, account ids, hex ids, UUIDs, URLs, e-mail addresses,
numbers, durations and timestamps (so nearly every message is distinct), plus one
schema failure that quotes 2,500 different field names (2,500 templates of one error
type, the worst case for the scikit-learn grouping). Failures fall in 500,000 runs over
14 days, each run with its root span (workflow) and a successful step beside the
failures. Rows are written with `Store.append_steps`, the door ingest uses.

`failure_clusters` then runs over all of it in a fresh process, cold (first query of a
new connection), then warm, and reports wall seconds, CPU seconds of the process (all
its threads, DuckDB's included) and its peak resident memory (ru_maxrss), with the
number of distinct messages, fingerprints and displayed clusters and the machine's load
average (wall time on a shared machine depends on it; CPU time much less).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

T0_NS = 1_793_577_600_000_000_000  # 2026-11-02T00:00Z
DAY_NS = 86_400_000_000_000
DAYS = 14
RUNS_PER_MILLION = 500_000
CHUNK = 250_000
FIELD_NAMES = 2_500
BUILT_MARKER = "bench-complete"
WORKFLOWS = ("support_triage", "kb_answer", "refund_request", "account_config", "weekly_report")
TOOLS = ("kb_search", "get_account", "create_ticket", "update_ticket", "issue_refund",
         "update_settings", "query_warehouse", "send_report_email", None)
MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5-20250929", None)


def _hex(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """`n` random hex strings of `width` characters."""
    size = (width + 1) // 2
    raw = rng.bytes(n * size)
    return np.array([raw[i * size:(i + 1) * size].hex()[:width] for i in range(n)], dtype=object)


def _messages(kind: int, rng: np.random.Generator, n: int) -> list[str]:
    """Messages of failure kind `kind`, each with its own values."""
    a = _hex(rng, n, 8)
    b = _hex(rng, n, 12)
    k = rng.integers(1, 100_000, n)
    family = kind % 10
    if family == 0:
        return [f"Account acct_{x} not found (kind {kind})" for x in a]
    if family == 1:
        return [f"Timeout after {v} ms calling https://svc{kind}.internal/accounts/{v}/items?id={x}"
                for v, x in zip(k, a, strict=True)]
    if family == 2:
        return [f"Upstream {kind} returned 503 for POST /api/v2/tickets (request id {x}-{y})"
                for x, y in zip(a, b, strict=True)]
    if family == 3:
        return [f"Payment declined for charge ch_{y}: amount {v / 100:.2f} EUR exceeds balance [{kind}]"
                for y, v in zip(b, k, strict=True)]
    if family == 4:
        return [f"Job {x}-{y[:4]}-4{y[4:7]}-8{y[7:10]}-{y} failed on node-{v % 9} (kind {kind})"
                for x, y, v in zip(a, b, k, strict=True)]
    if family == 5:
        return [f"SMTP 550 5.1.1 recipient rejected: <user{v}@tenant{kind}.example.com>" for v in k]
    if family == 6:
        return [f"lease {x} expired at 2026-11-{1 + v % 28:02d}T{v % 24:02d}:{v % 60:02d}:07Z "
                f"after {v % 90}s (pool {kind})" for x, v in zip(a, k, strict=True)]
    if family == 7:
        return [f"Error code: 429 - {{'error': {{'type': 'rate_limit_error', 'message': "
                f"'Rate limit reached for org-{x} on tokens per min: Limit {v}, Used {v - 1}'}}, "
                f"'request_id': 'req_{y}'}} [{kind}]" for x, y, v in zip(a, b, k, strict=True)]
    if family == 8:
        return [f"etag \"{y}\" is stale for settings of account acct_{x} (kind {kind})"
                for x, y in zip(a, b, strict=True)]
    return [f"Query q_{y} exceeded the 60 s timeout on warehouse cluster wh-{v % 4} (kind {kind})"
            for y, v in zip(b, k, strict=True)]


def _schema_messages(rng: np.random.Generator, n: int) -> list[str]:
    fields = rng.integers(0, FIELD_NAMES, n)
    a = _hex(rng, n, 8)
    return [f"Settings API rejected update for account acct_{x}: unknown field "
            f"'settings.section_{_letters(f)}.value' (schema 2026-11-13)"
            for x, f in zip(a, fields, strict=True)]


def _letters(i: int) -> str:
    out = ""
    for _ in range(3):
        out += chr(ord("a") + i % 26)
        i //= 26
    return out


def build_store(path: Path, failed: int, seed: int = 7) -> None:
    from stepscope.schema import STEP_COLUMNS
    from stepscope.store import Store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from steps_factory import arrow_schema

    rng = np.random.default_rng(seed)
    store = Store.open(path, create=True)
    schema = arrow_schema()
    runs = max(1, failed * RUNS_PER_MILLION // 1_000_000)
    trace_ids = _hex(rng, runs, 32)
    run_start = T0_NS + rng.integers(0, DAYS * DAY_NS, runs)
    run_workflow = rng.integers(0, len(WORKFLOWS), runs)
    for lo in range(0, runs, CHUNK):
        hi = min(runs, lo + CHUNK)
        n = hi - lo
        cols = _base_columns(n)
        cols.update(trace_id=trace_ids[lo:hi], span_id=_hex(rng, n, 16), is_root=np.ones(n, bool),
                    start_time_ns=run_start[lo:hi], name=["run"] * n, step_kind=["workflow"] * n,
                    workflow=[WORKFLOWS[w] for w in run_workflow[lo:hi]], outcome=["failed"] * n)
        store.append_steps(_table(cols, n, schema, STEP_COLUMNS), compact=False)
    for lo in range(0, failed, CHUNK):
        hi = min(failed, lo + CHUNK)
        n = hi - lo
        run = rng.integers(0, runs, n)
        kind = rng.integers(0, 41, n)  # 40 kinds, and 40 the schema failure
        messages = np.empty(n, dtype=object)
        for k in range(41):
            where = np.flatnonzero(kind == k)
            if len(where):
                messages[where] = (_schema_messages(rng, len(where)) if k == 40
                                   else _messages(k, rng, len(where)))
        cols = _base_columns(n)
        cols.update(
            trace_id=trace_ids[run], span_id=_hex(rng, n, 16), is_root=np.zeros(n, bool),
            start_time_ns=run_start[run] + rng.integers(1_000_000, 60_000_000_000, n),
            name=["step"] * n, step_kind=["tool"] * n, status_code=["error"] * n,
            error_type=[f"Error{k}" for k in kind],
            http_status=np.where(kind % 3 == 0, 500 + kind % 4, 400 + kind % 30).astype(np.int32),
            error_message=messages,
            tool_name=[TOOLS[k % len(TOOLS)] for k in kind],
            request_model=[MODELS[k % len(MODELS)] for k in kind],
        )
        store.append_steps(_table(cols, n, schema, STEP_COLUMNS), compact=False)
    store.compact(force=True)


def _base_columns(n: int) -> dict:
    return {"status_code": ["unset"] * n, "service_name": ["bench"] * n,
            "service_version": ["1.0.0"] * n, "attributes": [[]] * n,
            "resource_attributes": [[]] * n, "source_file": ["bench"] * n}


def _table(cols: dict, n: int, schema: pa.Schema, columns) -> pa.Table:
    start = np.asarray(cols["start_time_ns"], dtype=np.int64)
    cols["end_time_ns"] = start + 1_000_000_000
    cols["duration_ms"] = np.full(n, 1000.0)
    cols["start_time"] = (start // 1000).astype("datetime64[us]")
    data = {c.name: cols.get(c.name, pa.nulls(n, schema.field(c.name).type)) for c in columns}
    return pa.table({k: pa.array(v, type=schema.field(k).type) if not isinstance(v, pa.Array) else v
                     for k, v in data.items()}, schema=schema)


def measure(db: str) -> dict:
    """Run in a child process: cluster everything twice, report seconds and peak RSS."""
    from stepscope.analytics.clusters import failure_clusters
    from stepscope.store import Store

    store = Store.open(db)
    out = {"rows": store.row_count()}
    with store.connect() as con:
        started, cpu = time.perf_counter(), time.process_time()
        frame = failure_clusters(con)
        out["cold_s"] = round(time.perf_counter() - started, 2)
        out["cold_cpu_s"] = round(time.process_time() - cpu, 2)
        started, cpu = time.perf_counter(), time.process_time()
        failure_clusters(con)
        out["warm_s"] = round(time.perf_counter() - started, 2)
        out["warm_cpu_s"] = round(time.process_time() - cpu, 2)
        out["failed_steps"] = int(frame["count"].sum())
        out["fingerprints"] = int(frame["member_ids"].list.len().sum())
        out["clusters"] = frame.height
        out["distinct_messages"] = con.execute(
            "SELECT count(DISTINCT error_message) FROM steps WHERE status_code = 'error'").fetchone()[0]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_average_1m"] = round(os.getloadavg()[0], 1)  # the machine may be shared
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failed", type=int, action="append",
                        help="failed steps to cluster (repeatable; default 1,000,000)")
    parser.add_argument("--db", help="store directory to build or reuse (default: a temporary one)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    for failed in args.failed or [1_000_000]:
        root = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="bench-clusters-"))
        db = root / f"failed-{failed}" if args.db else root
        try:
            if not (db / BUILT_MARKER).exists():
                shutil.rmtree(db, ignore_errors=True)
                started = time.perf_counter()
                build_store(db, failed)
                (db / BUILT_MARKER).touch()
                print(f"built {failed:,} failed steps in {time.perf_counter() - started:.1f}s", flush=True)
            result = subprocess.run([sys.executable, __file__, "--measure", str(db)],
                                    check=True, capture_output=True, text=True)
            print(json.dumps({"failed": failed, **json.loads(result.stdout)}), flush=True)
        finally:
            if not args.db:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
