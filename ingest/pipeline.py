"""Files (or one OTLP/HTTP request) in, stored steps out, each file all or nothing.

`ingest_paths` reads every file under the given paths. The parent process reads and
frames each file (`formats`) and keeps the books; worker processes, one per core, decode
and normalise tasks of a few units (`otlp_decode`, `normalise`) and write each task's
steps into the store as a pending segment (`Store.write_pending`). When every file with
rows in a pending segment has been read and decoded, the parent publishes it
(`Store.publish_pending`), which deduplicates it against what is stored, leaves out the
rows of rejected files and makes it visible atomically.

Memory stays bounded whatever the input: a file is read a unit at a time, few tasks are
in flight, and decoded steps wait on disk rather than in memory. A file is stored only
when all of it decoded, so a rejected file writes nothing; the exception is JSON Lines,
where a bad line is rejected alone (with its line number) and the other lines are kept,
as the Collector's file exporter writes one independent request per line.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from stepscope.config import Config
from stepscope.ingest import workers as worker_tasks
from stepscope.ingest.formats import FormatError, Unit, read_units, request_unit
from stepscope.ingest.units import OtlpError
from stepscope.ingest.workers import (
    InlineExecutor,
    UnitResult,
    give_back_memory,
    init_worker,
    normalised_steps,
    process_batch,
    process_in_worker,
)
from stepscope.store import (
    MARKER_FILE,
    WRITER_FREED_MEMORY_KEPT,
    AppendResult,
    Store,
    scratch_connection,
)

# Use worker processes only when there is enough input to repay starting them.
POOL_MIN_BYTES = 16 * 1024 * 1024
# Tasks handed out beyond one per worker: enough that a worker never waits for the next.
EXTRA_TASKS_IN_FLIGHT = 1
# Units are decoded and normalised together up to this much input per task: normalising
# has a fixed cost of about 70 ms per call, which 15,000 spans or more make small, while
# a worker holds a task's spans in memory several times over (about 250 MB here).
TASK_BYTES = 16 * 1024 * 1024
MAX_UNITS_PER_TASK = 256
# Pending segments are published several at a time, since each publish scans the keys
# of the stored segments once: as soon as this many are ready, or this many rows (the
# keys of the rows published together are held in memory at once).
PUBLISH_SEGMENTS = 4
PUBLISH_ROWS = 250_000
# Worker processes are replaced after this many tasks between them.
TASKS_PER_POOL = 40

Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    """What a run did. `files` counts the sources read (a request counts as one)."""

    files: int = 0
    spans_stored: int = 0
    duplicates: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def spans_read(self) -> int:
        return self.spans_stored + self.duplicates

    @property
    def spans_per_second(self) -> float:
        return self.spans_read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary: exactly these five keys."""
        return {
            "files": self.files,
            "spans_stored": self.spans_stored,
            "duplicates": self.duplicates,
            "rejected": [dict(r) for r in self.rejected],
            "seconds": round(self.seconds, 3),
        }

    def reject(self, source: str, reason: str) -> None:
        self.rejected.append({"file": source, "reason": reason})

    def add(self, result: AppendResult) -> None:
        self.spans_stored += result.stored
        self.duplicates += result.duplicates


# -- the parent: reading files, keeping the books ------------------------------------------


@dataclass
class _FileJob:
    path: str
    outstanding: int = 0
    read_all: bool = False
    error: str | None = None
    rejected_records: list[tuple[int, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.read_all and self.outstanding == 0

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason


@dataclass
class _Pending:
    """A pending segment and whose rows it holds: (file, offset, rows) per unit.

    A worker writes many tasks into one segment (`workers._HeldSegment`); the segment is
    `complete` when the worker says so or its pool has shut down.
    """

    path: str
    parts: list[tuple[_FileJob, int, int]] = field(default_factory=list)
    complete: bool = False

    @property
    def ready(self) -> bool:
        return self.complete and all(job.finished for job, _, _ in self.parts)

    @property
    def rows(self) -> int:
        return sum(rows for _, _, rows in self.parts)

    def excluded(self) -> list[tuple[int, int]]:
        return [(offset, rows) for job, offset, rows in self.parts if job.error is not None]


class _Runner:
    """Hands tasks to the workers, takes results back in order, publishes what is due."""

    def __init__(self, store: Store, config: Config, workers: int, report: IngestReport,
                 progress: Callable[[int], None]):
        self.store = store
        self.progress = progress
        self.config = config
        self.report = report
        self.tasks_out: deque[tuple[list[_FileJob], Future[list[UnitResult]], int]] = deque()
        self.batch: list[tuple[_FileJob, Unit]] = []  # units waiting to share a task
        self.batch_bytes = 0
        self.batch_position = 0  # how far into the input the batch reaches, in bytes
        self.pending: dict[str, _Pending] = {}  # in the order the tasks were given out
        self._con: duckdb.DuckDBPyConnection | None = None  # for publishing
        self.workers = workers
        self.tasks = 0  # tasks given to the current worker processes
        self.executor: Executor
        if workers > 1:
            self.executor = self._new_pool()
            self.capacity = workers + EXTRA_TASKS_IN_FLIGHT
        else:
            self.executor = InlineExecutor()
            self.capacity = 1

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported everything once; pandas too,
        # because pyarrow imports it on first use when it is installed.
        context.set_forkserver_preload(["stepscope.ingest.workers", "pandas"])
        self.tasks = 0
        return ProcessPoolExecutor(self.workers, mp_context=context,
                                   initializer=init_worker,
                                   initargs=(self.config, worker_tasks.SEGMENT_ROWS))

    def _renew_pool(self) -> None:
        """Replace the worker processes once the work in hand is done.

        A worker's memory creeps up over many tasks (the allocators keep some of what
        DuckDB and Arrow free), and a fresh fork from the server resets it. Not
        `max_tasks_per_child`: up to Python 3.15 it can leave the pool without workers
        (CPython gh-115634).
        """
        self._shut_down_pool()
        self.executor = self._new_pool()

    def _shut_down_pool(self) -> None:
        """Take every result back and stop the workers; as they stop, they complete their
        pending segments, which are then ready to publish."""
        while self.tasks_out:
            self._collect_one()
        self.executor.shutdown(wait=True)
        for pending in self.pending.values():
            pending.complete = True

    def submit(self, job: _FileJob, unit: Unit, position: int) -> None:
        """Queue a unit; it shares a task with the next units (of any file) up to TASK_BYTES."""
        job.outstanding += 1
        self.batch.append((job, unit))
        self.batch_bytes += unit.size
        self.batch_position = position
        if self.batch_bytes >= TASK_BYTES or len(self.batch) >= MAX_UNITS_PER_TASK:
            self._dispatch()

    def _dispatch(self) -> None:
        if not self.batch:
            return
        jobs = [job for job, _ in self.batch]
        units = [unit for _, unit in self.batch]
        self.batch, self.batch_bytes = [], 0
        db = str(self.store.path)
        if isinstance(self.executor, ProcessPoolExecutor):
            if self.tasks >= TASKS_PER_POOL:
                self._renew_pool()
            self.tasks += 1
            future = self.executor.submit(process_in_worker, units, db)
        else:
            future = self.executor.submit(process_batch, units, self.config, db)
        self.tasks_out.append((jobs, future, self.batch_position))
        while len(self.tasks_out) >= self.capacity:
            self._collect_one()

    def settle(self, wait: bool = False) -> None:
        """Take back finished results and publish what is due; with `wait`, the end of
        the run: every result, the workers stopped, everything published."""
        if wait:
            self._dispatch()
            if isinstance(self.executor, ProcessPoolExecutor):
                self._shut_down_pool()
        while self.tasks_out and (wait or self.tasks_out[0][1].done()):
            self._collect_one()
        self._publish_ready(final=wait)

    def _collect_one(self) -> None:
        jobs, future, position = self.tasks_out.popleft()
        done: list[_FileJob] = []
        # Every unit's rows are booked before anything is published: a pending segment
        # is complete only once all the task's results are in.
        for job, result in zip(jobs, future.result(), strict=True):
            job.outstanding -= 1
            if result.pending is not None:
                pending = self.pending.setdefault(result.pending, _Pending(result.pending))
                pending.parts.append((job, result.offset, result.rows))
                pending.complete = pending.complete or result.complete
            if result.error is not None:
                job.fail(result.error)
            job.rejected_records.extend(result.rejected_records)
            if job.finished:
                done.append(job)
        for job in done:
            self.finish(job)
        self.progress(position)
        self._publish_ready()

    def finish(self, job: _FileJob) -> None:
        """Report a file whose units are all done (its rows are published with their
        pending segments)."""
        if job.error is not None:
            self.report.reject(job.path, job.error)
        else:
            for line, reason in sorted(job.rejected_records):
                self.report.reject(job.path, f"line {line}: {reason}")

    def _publish_ready(self, final: bool = False) -> None:
        """Publish pending segments, in order, as far as they are ready: several at a
        time (one scan of the stored keys for them all), up to PUBLISH_ROWS rows a time,
        and everything at the end."""
        ready: list[_Pending] = []
        for pending in self.pending.values():
            if not pending.ready:
                break
            ready.append(pending)
        rows = sum(pending.rows for pending in ready)
        if not ready or (len(ready) < PUBLISH_SEGMENTS and rows < PUBLISH_ROWS and not final):
            return
        group: list[_Pending] = []
        for pending in ready:
            if group and sum(p.rows for p in group) + pending.rows > PUBLISH_ROWS:
                self._publish(group)
                group = []
            group.append(pending)
        self._publish(group)

    def _publish(self, group: list[_Pending]) -> None:
        files = []
        for pending in group:
            del self.pending[pending.path]
            excluded = pending.excluded()
            if sum(rows for _, rows in excluded) == pending.rows:
                self.store.discard_pending(pending.path)
            else:
                files.append((pending.path, excluded))
        if files:
            self.report.add(self.store.publish_pending(files, con=self.scratch()))
            give_back_memory()  # the keys just read: the parent waits a while before the next

    def scratch(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = scratch_connection(threads=1, memory_limit="256MB",
                                           allocator_flush_threshold=WRITER_FREED_MEMORY_KEPT)
        return self._con

    def close(self) -> None:
        """Stop the workers; pending segments never published are deleted."""
        if isinstance(self.executor, ProcessPoolExecutor):
            # Wait for the workers to stop, so that none is still writing a segment.
            self.executor.shutdown(wait=True, cancel_futures=True)
        for _jobs, future, _ in self.tasks_out:
            if not future.cancelled() and future.done() and future.exception() is None:
                for result in future.result():
                    if result.pending is not None:
                        self.store.discard_pending(result.pending)
        for path in self.pending:
            self.store.discard_pending(path)
        if self._con is not None:
            self._con.close()


# -- public API ----------------------------------------------------------------------------


def iter_input_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files named, and the files under the directories named (recursively, sorted).

    Inside directories, hidden names and stepscope stores are skipped: a store kept next
    to the traces it was loaded from is not input.
    """
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                if MARKER_FILE in files:
                    dirs[:] = []
                    continue
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ingest_paths(store: Store, paths: Iterable[str | os.PathLike[str]], config: Config,
                 progress: Progress | None = None, *, workers: int | None = None) -> IngestReport:
    """Ingest files and directories; returns what was stored, skipped and rejected.

    `progress(bytes_done, bytes_total)` is called as units are done. `workers` defaults
    to one process per core when the input is large enough to repay starting them.
    """
    started = time.perf_counter()
    report = IngestReport()
    files = list(iter_input_files(paths))
    sizes = [_size_or_zero(f) for f in files]
    total = sum(sizes)
    if workers is None:
        workers = default_workers() if total >= POOL_MIN_BYTES else 1
    done_before = 0
    reported = 0

    def advance(position: int) -> None:
        nonlocal reported
        if progress is not None and position > reported:
            reported = position
            progress(position, total)

    store.sweep_stale_pending()
    runner = _Runner(store, config, workers, report, advance)
    try:
        for path, size in zip(files, sizes, strict=True):
            report.files += 1
            job = _FileJob(str(path))
            try:
                for unit in read_units(path, config.ingest):
                    runner.submit(job, unit, done_before + min(unit.consumed, size))
            except FormatError as exc:
                job.fail(str(exc))
            except OSError as exc:
                job.fail(f"cannot read: {exc.strerror or exc}")
            job.read_all = True
            if job.finished:
                runner.finish(job)
            runner.settle()
            done_before += size
            if job.finished and not runner.tasks_out and not runner.batch:
                advance(done_before)
        runner.settle(wait=True)
        advance(total)
    finally:
        runner.close()
    report.seconds = time.perf_counter() - started
    return report


def ingest_request(store: Store, body: bytes, content_type: str, config: Config, source: str,
                   *, batch: int = 1) -> IngestReport:
    """Ingest one OTLP/HTTP export request (body already decompressed), all or nothing.

    `content_type` is `application/x-protobuf` or `application/json`; `source` is what
    `source_file` records (e.g. the receiver's address); `batch` the request's number.
    """
    started = time.perf_counter()
    report = IngestReport(files=1)
    try:
        steps, _ = normalised_steps(request_unit(body, content_type, source, batch), config)
    except (FormatError, OtlpError) as exc:
        report.reject(source, str(exc))
    else:
        if steps is not None:
            report.add(store.append_steps(steps))
    report.seconds = time.perf_counter() - started
    return report


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
