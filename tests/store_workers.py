"""Processes for the concurrent writers-and-readers test of the store.

They live in a plain module (not the test file) so that `multiprocessing` can start them
in fresh interpreters, as real `stepscope serve` / `stepscope kpis` processes would be.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from steps_factory import make_runs

from stepscope.store import Store


def _tag(batch: pa.Table, label: str, seed: int) -> pa.Table:
    """Give a batch deterministic ids (from `seed`) and a label in `source_file`."""
    rng = random.Random(seed)
    traces = {t: f"{rng.getrandbits(128):032x}" for t in batch.column("trace_id").to_pylist()}
    spans = {s: f"{rng.getrandbits(64):016x}" for s in batch.column("span_id").to_pylist()}
    columns = {name: batch.column(name) for name in batch.column_names}
    columns["trace_id"] = pa.array([traces[t] for t in batch.column("trace_id").to_pylist()])
    columns["span_id"] = pa.array([spans[s] for s in batch.column("span_id").to_pylist()])
    columns["parent_span_id"] = pa.array(
        [spans.get(p) if p else None for p in batch.column("parent_span_id").to_pylist()],
        pa.string(),
    )
    columns["source_file"] = pc.cast(pa.array([label] * batch.num_rows), pa.string())
    return pa.table(columns, schema=batch.schema)


def writer(db: str, name: str, seconds: float, out: str) -> None:
    """Append batches until time is up; every other batch is one both writers send."""
    store = Store.open(db, create=True)
    log = []
    deadline = time.monotonic() + seconds
    seq = 0
    try:
        while time.monotonic() < deadline:
            shared = seq % 2 == 0
            label = f"shared-{seq}" if shared else f"{name}-{seq}"
            seed = seq if shared else hash((name, seq)) & 0xFFFFFFFF
            batch = _tag(make_runs(25, start=datetime(2026, 11, 10, tzinfo=UTC)), label, seed)
            result = store.append_steps(batch)
            log.append({"label": label, "published": time.time(), "stored": result.stored,
                        "duplicates": result.duplicates})
            seq += 1
            time.sleep(0.05)
    except Exception:
        log.append({"error": traceback.format_exc()})
    with open(out, "w") as handle:
        json.dump(log, handle)


def reader(db: str, seconds: float, out: str) -> None:
    """Query the store continuously, like a dashboard, recording what it sees and when."""
    log = []
    deadline = time.monotonic() + seconds
    store = None
    con = None
    try:
        while time.monotonic() < deadline:
            if store is None:
                try:
                    store = Store.open(db)
                    con = store.connect()
                except Exception as exc:  # the store may not exist in the first instant
                    if "no store here yet" not in str(exc):
                        raise
                    time.sleep(0.05)
                    continue
            con.refresh()
            labels = [r[0] for r in con.execute(
                "SELECT DISTINCT source_file FROM steps").fetchall()]
            total, distinct = con.execute(
                "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM steps").fetchone()
            log.append({"at": time.time(), "labels": labels, "rows": total, "distinct": distinct})
            time.sleep(0.1)
    except Exception:
        log.append({"error": traceback.format_exc()})
    with open(out, "w") as handle:
        json.dump(log, handle)
