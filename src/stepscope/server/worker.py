"""Spool -> store: the coordinator that publishes acknowledged requests in batches.

Why batches: each store append writes a Parquet segment and swaps the manifest under the
writers' lock, a fixed cost that would dominate if paid per HTTP request. The
coordinator hands whole spool files (up to `batch_max_bytes` per batch) to
`batches.publish_batch`, which decodes and normalises all their requests together and
stores them with ONE append per dataset. It runs at least every `flush_interval_s`, so
a span is visible to readers a second or two after it was acknowledged.

Why worker processes: decoding and normalising are CPU work that holds Python's global
lock; with `workers` > 1 batches are published by that many processes in parallel (the
store takes concurrent writers), while the HTTP threads keep answering. With one worker
the batches run on the coordinator's own thread.

A spool file is deleted only after its batch is published. If publishing fails (disk
full, store unreadable) the files stay, are retried after a growing pause, and the spool
fills until the server answers 503: acknowledged data is never dropped. A request that
cannot be decoded at all (it passed the checks at the door, so this means a bug) is
reported and skipped rather than blocking everything behind it.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stepscope.config import Config
from stepscope.server import batches
from stepscope.server.limits import ServeLimits
from stepscope.server.spool import Spool
from stepscope.store import scratch_connection
from stepscope.stores import AnyStore

MAX_RETRY_PAUSE_S = 30.0
# At shutdown, give up after this many failed attempts: the spool keeps the data for the
# next start, and a stuck store must not keep SIGTERM from ending the process.
DRAIN_ATTEMPTS = 3


@dataclass
class WorkerStats:
    """What the worker has done; read by the server for its summary and `Retry-After`."""

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


@dataclass
class _Flight:
    files: list[Path]
    size: int
    started: float


def default_workers() -> int:
    """One worker process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class SpoolWorker:
    """Drains a spool into a store from a coordinator thread (and worker processes)."""

    def __init__(self, spool: Spool, store: AnyStore, config: Config, limits: ServeLimits,
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
        # chdb runs one ClickHouse engine per process on a directory: publish in-process.
        in_process_only = getattr(store, "location", None) is not None and store.location.kind == "chdb"
        self._workers = 1 if in_process_only else (limits.workers or default_workers())
        self._pool: cf.ProcessPoolExecutor | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._in_flight: dict[cf.Future[batches.BatchResult], _Flight] = {}
        self._claimed: set[Path] = set()
        self._next_batch = 1
        self._retry_at = 0.0
        self._pause = 0.0

    def start(self) -> None:
        """Start the worker processes (waiting until they are ready) and the coordinator.

        Waiting here keeps the first batch from paying for process start-up, so spans
        are visible within seconds from the first request on.
        """
        if self._workers > 1:
            self._pool = self._new_pool()
            cf.wait([self._pool.submit(batches.ready) for _ in range(self._workers)])
        self._thread.start()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["stepscope.server.batches"])
        return cf.ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=batches.init_process,
            initargs=(self.store, self.config, self.source))

    def wake(self) -> None:
        """Ask for a pass now (e.g. the spool is filling up)."""
        self._wake.set()

    def stop(self, drain: bool = True) -> None:
        """Stop the coordinator; with `drain`, publish everything still in the spool first."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if drain:
            self._drain()
        self._wait_in_flight()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._con is not None:
            self._con.close()

    def _drain(self) -> None:
        failed_attempts = 0
        while True:
            failures = self.stats.failures
            self._retry_at = 0.0
            self._step(wait=True)
            self._wait_in_flight()
            if self.stats.failures > failures:
                failed_attempts += 1
                if failed_attempts >= DRAIN_ATTEMPTS:
                    self._log("stepscope serve: giving up; unstored requests stay in the "
                              f"spool {self.spool.dir} and are stored on the next start")
                    return
                time.sleep(0.5 * failed_attempts)
            elif not self._unclaimed():
                return

    # -- the coordinator ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._step(wait=False)
            except Exception as exc:  # the server keeps running; the spool keeps the data
                self._failed(exc)
                busy = False
            if not busy:
                self._wait(self.limits.flush_interval_s)

    def _wait(self, timeout: float) -> None:
        if self._in_flight:
            cf.wait(list(self._in_flight), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        else:
            self._wake.wait(timeout)
            self._wake.clear()

    def _step(self, wait: bool) -> bool:
        """Collect finished batches and start new ones; True when a batch was started."""
        self._collect(wait=wait and len(self._in_flight) >= self._workers)
        if time.monotonic() < self._retry_at:
            return False
        self.spool.seal()
        started = False
        while len(self._in_flight) < self._workers:
            files = self._next_files()
            if not files:
                break
            self._submit(files)
            started = True
            if self._pool is None:
                self._collect(wait=True)
        return started

    def _unclaimed(self) -> list[Path]:
        return [p for p in self.spool.seal() if p not in self._claimed]

    def _next_files(self) -> list[Path]:
        chosen: list[Path] = []
        size = 0
        for path in self._unclaimed():
            file_size = self.spool.size_of(path)
            if chosen and size + file_size > self.limits.batch_max_bytes:
                break
            chosen.append(path)
            size += file_size
        return chosen

    def _submit(self, files: list[Path]) -> None:
        size = sum(self.spool.size_of(p) for p in files)
        first = self._next_batch
        self._next_batch += 1 + size // 1024  # room for the requests of this batch
        if self._pool is not None:
            future = self._pool.submit(batches.publish_in_process, [str(p) for p in files], first)
        else:
            future = cf.Future()
            try:
                future.set_result(batches.publish_batch(
                    self.store, self._connection(), files, self.config, self.source, first))
            except Exception as exc:
                future.set_exception(exc)
        self._claimed.update(files)
        self._in_flight[future] = _Flight(files, size, time.monotonic())

    def _collect(self, wait: bool = False) -> None:
        if wait and self._in_flight:
            cf.wait(list(self._in_flight), return_when=cf.FIRST_COMPLETED)
        for future in [f for f in self._in_flight if f.done()]:
            flight = self._in_flight.pop(future)
            self._claimed.difference_update(flight.files)
            try:
                result = future.result()
            except Exception as exc:
                self._failed(exc)
                continue
            self.spool.remove(flight.files)
            self._record(result, flight)

    def _wait_in_flight(self) -> None:
        while self._in_flight:
            self._collect(wait=True)

    def _record(self, result: batches.BatchResult, flight: _Flight) -> None:
        stats = self.stats
        for error in result.undecodable:
            self._log(f"stepscope serve: skipped a spooled request that does not decode: {error}")
        stats.undecodable_requests += len(result.undecodable)
        stats.requests += result.requests
        stats.spans_stored += result.spans_stored
        stats.spans_duplicate += result.spans_duplicate
        stats.events_stored += result.events_stored
        elapsed = max(time.monotonic() - flight.started, 1e-3)
        rate = flight.size * self._workers / elapsed
        stats.bytes_per_second = rate if not stats.batches else \
            0.7 * stats.bytes_per_second + 0.3 * rate
        stats.batches += 1
        stats.last_publish = time.monotonic()
        self._pause = 0.0

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self._pause = min(max(self._pause * 2, 0.5), MAX_RETRY_PAUSE_S)
        self._retry_at = time.monotonic() + self._pause
        self._log(f"stepscope serve: storing spooled requests failed (retrying in "
                  f"{self._pause:.1f}s): {self.stats.last_error}")
        if self._con is not None:
            self._con.close()
            self._con = None
        if isinstance(exc, BrokenProcessPool) and self._pool is not None:
            # A worker process died (e.g. killed for memory): start a fresh pool.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = scratch_connection()
        return self._con
