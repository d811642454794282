"""Spool -> store: the background worker that publishes acknowledged requests in batches.

Why batches: each store append writes a Parquet segment and swaps the manifest under the
writers' lock, a fixed cost that would dominate if paid per HTTP request. The worker
takes whole spool files (everything acknowledged since its last pass, up to
`batch_max_bytes`), decodes and normalises all their trace requests together, and stores
them with ONE `append_steps` (plus one `content_events` append for log records). It runs
at least every `flush_interval_s`, so a span is visible to readers about a second after
it was acknowledged.

A spool file is deleted only after everything in it is published. If publishing fails
(disk full, store unreadable) the files stay, the worker retries with a growing pause,
and the spool fills until the server answers 503: acknowledged data is never dropped.
A record that cannot be decoded at all (it passed the checks at the door, so this means
a bug) is reported and skipped rather than blocking everything behind it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stepscope.config import Config
from stepscope.server import ingest_adapter, logs
from stepscope.server.limits import ServeLimits
from stepscope.server.spool import KIND_LOGS, KIND_TRACES, Spool
from stepscope.store import Store

MAX_RETRY_PAUSE_S = 30.0
# At shutdown, give up after this many failed attempts: the spool keeps the data for the
# next start, and a stuck store must not keep SIGTERM from ending the process.
DRAIN_ATTEMPTS = 3


@dataclass
class WorkerStats:
    """What the worker has done; read by the server for logs and `Retry-After`."""

    batches: int = 0
    requests: int = 0
    spans_stored: int = 0
    spans_duplicate: int = 0
    events_stored: int = 0
    undecodable_requests: int = 0
    failures: int = 0
    last_error: str | None = None
    bytes_per_second: float = 0.0       # recent drain rate, for Retry-After estimates
    last_publish: float = field(default_factory=time.monotonic)


class SpoolWorker:
    """Drains a spool into a store on a thread of its own."""

    def __init__(self, spool: Spool, store: Store, config: Config, limits: ServeLimits,
                 source: str = "otlp-http", log: Callable[[str], None] | None = None):
        self.spool = spool
        self.store = store
        self.config = config
        self.limits = limits
        self.source = source
        self.stats = WorkerStats()
        self._log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepscope-spool-worker",
                                        daemon=True)
        self._con: duckdb.DuckDBPyConnection | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Ask for a pass now (e.g. the spool is filling up)."""
        self._wake.set()

    def stop(self, drain: bool = True) -> None:
        """Stop the thread; with `drain`, publish everything still in the spool first."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if drain:
            self.drain()

    def drain(self) -> None:
        """Publish until the spool is empty (or publishing keeps failing)."""
        failures = 0
        while True:
            try:
                if not self.publish_once():
                    return
                failures = 0
            except Exception as exc:
                self._failed(exc)
                failures += 1
                if failures >= DRAIN_ATTEMPTS:
                    self._log("stepscope serve: giving up; unstored requests stay in the "
                              f"spool {self.spool.dir} and are stored on the next start")
                    return
                time.sleep(0.5 * failures)

    # -- one pass -----------------------------------------------------------------------

    def publish_once(self) -> bool:
        """Seal the active spool file and publish a batch of sealed files.

        Returns True when there was something to publish.
        """
        sealed = self.spool.seal()
        if not sealed:
            return False
        batch: list[Path] = []
        size = 0
        for path in sealed:
            file_size = self.spool.size_of(path)
            if batch and size + file_size > self.limits.batch_max_bytes:
                break
            batch.append(path)
            size += file_size
        started = time.monotonic()
        self._publish(batch)
        elapsed = max(time.monotonic() - started, 1e-3)
        self.spool.remove(batch)
        rate = size / elapsed
        stats = self.stats
        stats.bytes_per_second = rate if not stats.batches else 0.7 * stats.bytes_per_second + 0.3 * rate
        stats.batches += 1
        stats.last_publish = time.monotonic()
        return True

    def _publish(self, files: list[Path]) -> None:
        traces: list[bytes] = []
        log_payloads: list[bytes] = []
        for path in files:
            for record in self.spool.read(path):
                if record.kind == KIND_TRACES:
                    traces.append(record.payload)
                elif record.kind == KIND_LOGS:
                    log_payloads.append(record.payload)
        con = self._connection()
        stats = self.stats
        if traces:
            steps, undecodable = ingest_adapter.steps_from_requests(
                con, traces, self.config, self.source, first_batch=stats.requests + 1)
            for error in undecodable:
                self._log(f"stepscope serve: skipped a spooled request that does not decode: {error}")
            stats.undecodable_requests += len(undecodable)
            if steps is not None and steps.num_rows:
                result = self.store.append_steps(steps)
                stats.spans_stored += result.stored
                stats.spans_duplicate += result.duplicates
        if log_payloads:
            events = logs.content_events(con, log_payloads, self.config.privacy.content,
                                         self.source)
            if events is not None and events.num_rows:
                stats.events_stored += self.store.append("content_events", events).stored
        stats.requests += len(traces) + len(log_payloads)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            self._wake.wait(pause or self.limits.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # Keep going while there is a backlog; otherwise wait for the next tick.
                while self.publish_once() and not self._stop.is_set():
                    if not self._backlog():
                        break
                pause = 0.0
            except Exception as exc:
                self._failed(exc)
                pause = min(max(pause * 2, 0.5), MAX_RETRY_PAUSE_S)

    def _backlog(self) -> bool:
        return self.spool.sealed_files() > 0

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self._log(f"stepscope serve: storing spooled requests failed (will retry): "
                  f"{self.stats.last_error}")
        self._reset_connection()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect()
        return self._con

    def _reset_connection(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None
