"""Publishing one batch of spool files: decode, normalise, and ONE append per dataset.

This runs either on the worker thread of the server or, to use every core, in a worker
process of its own (`init_process` / `publish_in_process`): the store accepts several
writers at once (they serialise only for the short publish step), so each process
appends its own batches and only counts travel back, never the data itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stepscope.config import Config
from stepscope.server import ingest_adapter, logs
from stepscope.server.spool import KIND_LOGS, KIND_TRACES, read_records
from stepscope.store import WRITER_FREED_MEMORY_KEPT, scratch_connection
from stepscope.stores import AnyStore


@dataclass
class BatchResult:
    requests: int = 0
    spans_stored: int = 0
    spans_duplicate: int = 0
    events_stored: int = 0
    undecodable: list[str] = field(default_factory=list)


def publish_batch(store: AnyStore, con: duckdb.DuckDBPyConnection, files: list[Path],
                  config: Config, source: str, first_batch: int = 1) -> BatchResult:
    """Store every record of the given spool files; raises if the store refuses them."""
    traces: list[bytes] = []
    log_payloads: list[bytes] = []
    for path in files:
        for record in read_records(path):
            if record.kind == KIND_TRACES:
                traces.append(record.payload)
            elif record.kind == KIND_LOGS:
                log_payloads.append(record.payload)
    result = BatchResult(requests=len(traces) + len(log_payloads))
    if traces:
        steps, result.undecodable = ingest_adapter.steps_from_requests(
            con, traces, config, source, first_batch=first_batch)
        del traces
        if steps is not None and steps.num_rows:
            appended = store.append_steps(steps, con=con)
            result.spans_stored, result.spans_duplicate = appended.stored, appended.duplicates
    if log_payloads:
        events = logs.content_events(log_payloads, config.privacy.content, source)
        if events is not None and events.num_rows:
            result.events_stored = store.append("content_events", events, con=con).stored
    return result


# -- in a worker process ---------------------------------------------------------------------

_process_state: tuple[AnyStore, duckdb.DuckDBPyConnection, Config, str] | None = None


def init_process(store: AnyStore, config: Config, source: str) -> None:
    """Worker-process initializer: one store handle and one single-threaded scratch DB.

    The store arrives pickled: a path, or a ClickHouse location that connects anew here.
    """
    global _process_state
    _process_state = (store, scratch_connection(
        threads=1, allocator_flush_threshold=WRITER_FREED_MEMORY_KEPT),
                      config, source)


def ready() -> int:
    """A no-op task: submitting one per worker starts and initialises every process."""
    assert _process_state is not None, "worker process not initialised"
    return os.getpid()


def publish_in_process(files: list[str], first_batch: int) -> BatchResult:
    assert _process_state is not None, "worker process not initialised"
    store, con, config, source = _process_state
    return publish_batch(store, con, [Path(f) for f in files], config, source, first_batch)
