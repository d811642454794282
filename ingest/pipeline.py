"""Files (or one OTLP/HTTP request) in, stored steps out, each file all or nothing.

`ingest_paths` reads every file under the given paths. The parent process reads and
frames each file (`formats`), worker processes decode and normalise the units
(`otlp_decode`, `normalise`) on every core, and the parent appends whole files to the
store (`Store.append_steps`, which deduplicates against what is stored and publishes
atomically). Memory stays bounded whatever the input: a file is read a unit at a time,
few units are in flight, and the normalised steps of a file too large to hold are
spilled to a temporary Parquet file until the file has been read to its end.

A file is stored only when all of it decoded, so a rejected file writes nothing; the
exception is JSON Lines, where a bad line is rejected alone (with its line number) and
the other lines are kept, as the Collector's file exporter writes one independent
request per line.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from stepscope.ingest.formats import FormatError, Unit, read_units, request_unit
from stepscope.ingest.normalise import normalise
from stepscope.ingest.otlp_decode import OtlpError, decode_unit

from stepscope.config import Config
from stepscope.store import MARKER_FILE, Store

# Use worker processes only when there is enough input to repay starting them.
POOL_MIN_BYTES = 16 * 1024 * 1024
UNITS_IN_FLIGHT_PER_WORKER = 2
# Steps are appended to the store in batches of about this size (fewer, larger segments).
APPEND_ROWS = 100_000
APPEND_BYTES = 192 * 1024 * 1024
# A file whose steps grow beyond this is spilled to disk until it has been read whole.
SPILL_BYTES = 256 * 1024 * 1024

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


# -- decoding and normalising one unit (in a worker or in process) ---------------------


@dataclass
class UnitResult:
    steps: pa.Table | None
    rejected_records: list[tuple[int, str]]
    error: str | None = None


class _Decoder:
    """A DuckDB scratch connection and the configuration, one per process or thread."""

    def __init__(self, config: Config, threads: int | None = None):
        self.config = config
        self.con = duckdb.connect(config={"threads": threads} if threads else {})
        # DuckDB draws a progress bar on the terminal for slow queries; not from a library.
        self.con.execute("SET enable_progress_bar = false")

    def process(self, unit: Unit) -> UnitResult:
        try:
            raw, rejected = decode_unit(unit)
        except OtlpError as exc:
            return UnitResult(None, [], str(exc))
        if raw.num_rows == 0:
            return UnitResult(None, rejected)
        try:
            steps = normalise(self.con, raw, self.config)
        except (duckdb.Error, pa.ArrowException, ValueError) as exc:
            return UnitResult(None, [], f"could not normalise its spans: {exc}")
        return UnitResult(steps, rejected)


_worker: _Decoder | None = None


def _init_worker(config: Config) -> None:
    global _worker
    _worker = _Decoder(config, threads=1)


def _process_in_worker(unit: Unit) -> UnitResult:
    assert _worker is not None, "worker not initialised"
    return _worker.process(unit)


# -- per-file bookkeeping ------------------------------------------------------------------


@dataclass
class _FileJob:
    path: str
    outstanding: int = 0
    read_all: bool = False
    error: str | None = None
    tables: list[pa.Table] = field(default_factory=list)
    held_bytes: int = 0
    spilled: list[str] = field(default_factory=list)
    rejected_records: list[tuple[int, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.read_all and self.outstanding == 0

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self.tables.clear()


class _Appender:
    """Collects the steps of finished files and appends them to the store in batches."""

    def __init__(self, store: Store, report: IngestReport):
        self.store = store
        self.report = report
        self.buffer: list[pa.Table] = []
        self.rows = 0
        self.bytes = 0

    def add(self, tables: Iterable[pa.Table]) -> None:
        for table in tables:
            self.buffer.append(table)
            self.rows += table.num_rows
            self.bytes += table.nbytes
        if self.rows >= APPEND_ROWS or self.bytes >= APPEND_BYTES:
            self.flush()

    def add_spilled(self, files: list[str]) -> None:
        self.flush()
        for name in files:
            for batch in pq.ParquetFile(name).iter_batches(batch_size=APPEND_ROWS):
                self._append(pa.Table.from_batches([batch]))
            os.unlink(name)

    def flush(self) -> None:
        if self.buffer:
            table = pa.concat_tables(self.buffer)
            self.buffer, self.rows, self.bytes = [], 0, 0
            self._append(table)

    def _append(self, table: pa.Table) -> None:
        result = self.store.append_steps(table)
        self.report.spans_stored += result.stored
        self.report.duplicates += result.duplicates


class _Runner:
    """Runs units in worker processes (or in process), results handed back in order."""

    def __init__(self, config: Config, workers: int, report: IngestReport, appender: _Appender,
                 spill_dir: str):
        self.report = report
        self.appender = appender
        self.spill_dir = spill_dir
        self.queue: deque[tuple[_FileJob, Future[UnitResult] | UnitResult]] = deque()
        self.pool: ProcessPoolExecutor | None = None
        self.local: _Decoder | None = None
        if workers > 1:
            context = multiprocessing.get_context("forkserver")
            # Workers fork from a server that has imported everything once; pandas too,
            # because pyarrow imports it on first use when it is installed.
            context.set_forkserver_preload(["stepscope.ingest.pipeline", "pandas"])
            self.pool = ProcessPoolExecutor(workers, mp_context=context,
                                            initializer=_init_worker, initargs=(config,))
            self.capacity = workers * UNITS_IN_FLIGHT_PER_WORKER
        else:
            self.local = _Decoder(config)
            self.capacity = 1

    def submit(self, job: _FileJob, unit: Unit) -> None:
        job.outstanding += 1
        if self.pool is not None:
            self.queue.append((job, self.pool.submit(_process_in_worker, unit)))
        else:
            assert self.local is not None
            self.queue.append((job, self.local.process(unit)))
        while len(self.queue) >= self.capacity:
            self._collect_one()

    def settle(self, wait: bool = False) -> None:
        """Hand back finished results (all of them when `wait`)."""
        while self.queue and (wait or _done(self.queue[0][1])):
            self._collect_one()

    def _collect_one(self) -> None:
        job, pending = self.queue.popleft()
        result = pending.result() if isinstance(pending, Future) else pending
        job.outstanding -= 1
        if job.error is None:
            if result.error is not None:
                job.fail(result.error)
            else:
                job.rejected_records.extend(result.rejected_records)
                if result.steps is not None:
                    self._hold(job, result.steps)
        if job.finished:
            self.finish(job)

    def _hold(self, job: _FileJob, steps: pa.Table) -> None:
        job.tables.append(steps)
        job.held_bytes += steps.nbytes
        if job.held_bytes >= SPILL_BYTES:
            fd, name = tempfile.mkstemp(suffix=".parquet", dir=self.spill_dir)
            os.close(fd)
            pq.write_table(pa.concat_tables(job.tables), name, compression="zstd")
            job.spilled.append(name)
            job.tables, job.held_bytes = [], 0

    def finish(self, job: _FileJob) -> None:
        if job.error is not None:
            self.report.reject(job.path, job.error)
            for name in job.spilled:
                os.unlink(name)
            return
        for line, reason in job.rejected_records:
            self.report.reject(job.path, f"line {line}: {reason}")
        self.appender.add(job.tables)
        if job.spilled:
            self.appender.add_spilled(job.spilled)
        job.tables = []

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.local is not None:
            self.local.con.close()


def _done(pending: Future[UnitResult] | UnitResult) -> bool:
    return not isinstance(pending, Future) or pending.done()


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

    `progress(bytes_read, bytes_total)` is called as files are read. `workers` defaults
    to one process per core when the input is large enough to repay starting them.
    """
    started = time.perf_counter()
    report = IngestReport()
    files = list(iter_input_files(paths))
    sizes = [_size_or_zero(f) for f in files]
    total = sum(sizes)
    if workers is None:
        workers = default_workers() if total >= POOL_MIN_BYTES else 1
    appender = _Appender(store, report)
    done_before = 0
    with tempfile.TemporaryDirectory(prefix="stepscope-ingest-") as spill_dir:
        runner = _Runner(config, workers if len(files) and total else 1, report, appender, spill_dir)
        try:
            for path, size in zip(files, sizes, strict=True):
                report.files += 1
                job = _FileJob(str(path))
                try:
                    for unit in read_units(path, config.ingest):
                        runner.submit(job, unit)
                        if progress is not None:
                            progress(done_before + min(unit.consumed, size), total)
                except FormatError as exc:
                    job.fail(str(exc))
                except OSError as exc:
                    job.fail(f"cannot read: {exc.strerror or exc}")
                job.read_all = True
                if job.finished:
                    runner.finish(job)
                runner.settle()
                done_before += size
                if progress is not None:
                    progress(done_before, total)
            runner.settle(wait=True)
            appender.flush()
        finally:
            runner.close()
    report.seconds = time.perf_counter() - started
    return report


_request_decoders = threading.local()


def ingest_request(store: Store, body: bytes, content_type: str, config: Config, source: str,
                   *, batch: int = 1) -> IngestReport:
    """Ingest one OTLP/HTTP export request (body already decompressed), all or nothing.

    `content_type` is `application/x-protobuf` or `application/json`; `source` is what
    `source_file` records (e.g. the receiver's address); `batch` the request's number.
    """
    started = time.perf_counter()
    report = IngestReport(files=1)
    try:
        unit = request_unit(body, content_type, source, batch)
    except FormatError as exc:
        report.reject(source, str(exc))
    else:
        decoder = getattr(_request_decoders, "decoder", None)
        if decoder is None or decoder.config is not config:
            decoder = _request_decoders.decoder = _Decoder(config)
        result = decoder.process(unit)
        if result.error is not None:
            report.reject(source, result.error)
        elif result.steps is not None:
            stored = store.append_steps(result.steps)
            report.spans_stored, report.duplicates = stored.stored, stored.duplicates
    report.seconds = time.perf_counter() - started
    return report


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
