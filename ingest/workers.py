"""The work of ingest's worker processes: units decoded, normalised and written out.

Each function here runs in a worker process for large inputs, or in the calling process
for small ones (`InlineExecutor`). A task's steps are written straight into the store as
a pending segment, which no reader sees until the parent process publishes it, so the
parent holds no data and the Parquet encoding runs in parallel.

A worker process keeps its pending segment open across tasks (`_HeldSegment`), each task
a row group, until it holds SEGMENT_ROWS rows or the worker stops: a bulk ingest then
stores a few large segments, which readers scan as fast as compacted ones, instead of
one small segment per task that they would pay for until a compaction rewrote every row.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from multiprocessing import util
from typing import Any

import duckdb
import pyarrow as pa

from stepscope.config import Config
from stepscope.ingest.normalise import normalise
from stepscope.ingest.otlp_decode import decode_unit
from stepscope.ingest.units import OtlpError, Unit
from stepscope.store import (
    SMALL_SEGMENT_ROWS,
    WRITER_FREED_MEMORY_KEPT,
    PendingSegment,
    Store,
    scratch_connection,
)

# A worker's scratch connection is replaced after this many normalisations, so that what
# DuckDB's allocator keeps between queries cannot creep up over a long run.
CALLS_PER_CONNECTION = 50
# A worker completes its pending segment once it holds this many rows: a segment this
# large is never compacted again.
SEGMENT_ROWS = SMALL_SEGMENT_ROWS


@dataclass
class UnitResult:
    """A decoded unit: where its steps are (rows `offset` to `offset + rows` of a pending
    segment, which may still be open for later tasks unless `complete`) and the records
    rejected alone, or why the whole unit was rejected."""

    pending: str | None
    offset: int
    rows: int
    rejected_records: list[tuple[int, str]]
    error: str | None = None
    complete: bool = True  # the pending segment is complete: nothing more is written to it


def normalised_steps(unit: Unit, config: Config,
                     threads: int | None = None) -> tuple[pa.Table | None, list[tuple[int, str]]]:
    """Decode and normalise one unit: (steps or None when empty, records rejected alone).

    Raises OtlpError when the unit (and so its file) must be rejected.
    """
    raw, rejected = decode_unit(unit)
    return (normalise_raw(raw, config, threads) if raw.num_rows else None), rejected


class _Scratch:
    """The in-memory DuckDB connection a process normalises on, kept between calls.

    Opening one costs about 20 ms, a sizeable part of a call's fixed cost, so a worker
    keeps its connection (renewing it now and then).
    """

    def __init__(self) -> None:
        self.con: duckdb.DuckDBPyConnection | None = None
        self.threads: int | None = None
        self.calls = 0

    def get(self, threads: int | None) -> duckdb.DuckDBPyConnection:
        if self.con is None or self.threads != threads or self.calls >= CALLS_PER_CONNECTION:
            self.close()
            config: dict[str, str | int] = {"allocator_flush_threshold": WRITER_FREED_MEMORY_KEPT}
            if threads:
                config["threads"] = threads
            self.con = scratch_connection(**config)
            self.threads, self.calls = threads, 0
        self.calls += 1
        return self.con

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con = None


_scratch = _Scratch()


def normalise_raw(raw: pa.Table, config: Config, threads: int | None = None) -> pa.Table:
    """Normalise a raw spans batch on this process's scratch connection; OtlpError when
    its spans cannot be normalised."""
    con = _scratch.get(threads)
    try:
        steps = normalise(con, raw, config)
    except (duckdb.Error, pa.ArrowException, ValueError) as exc:
        _scratch.close()  # a failed query may leave the connection in any state
        raise OtlpError(f"could not normalise its spans: {exc}") from None
    if steps.num_rows != raw.num_rows:
        raise OtlpError(f"normalising {raw.num_rows} spans gave {steps.num_rows} steps")
    return steps


class _HeldSegment:
    """The pending segment a worker process writes its tasks into, across tasks."""

    def __init__(self) -> None:
        self.segment: PendingSegment | None = None
        self.segment_rows = SEGMENT_ROWS

    def write(self, steps: pa.Table, db: str | os.PathLike[str],
              con: duckdb.DuckDBPyConnection) -> tuple[str, int, bool]:
        """Append a task's steps: (segment path, offset of the first row, complete)."""
        if self.segment is None:
            self.segment = Store(db).open_pending()
        segment = self.segment
        offset = segment.write(steps, con=con)
        if segment.rows < self.segment_rows:
            return str(segment.path), offset, False
        self.segment = None
        return segment.close(), offset, True

    def close(self) -> None:
        """Complete the open segment (when the worker stops): the parent publishes every
        segment of a pool once the pool has shut down."""
        if self.segment is not None:
            self.segment.close()
            self.segment = None


_held = _HeldSegment()


def process_units(units: list[Unit], config: Config, db: str | os.PathLike[str],
                  threads: int | None = None, *, hold: bool = False) -> list[UnitResult]:
    """Decode units (of one file or several), normalise them together, write them out.

    Normalising has a fixed cost per call (a large query to plan, about 70 ms), so the
    units of a task share one call and one pending segment; each unit's rows are a known
    range of it, since each file is kept or rejected on its own. With `hold` (worker
    processes), the steps go into the worker's held segment rather than a file of
    their own.
    """
    results: list[UnitResult | None] = [None] * len(units)
    decoded: list[tuple[int, pa.Table, list[tuple[int, str]]]] = []
    for i, unit in enumerate(units):
        try:
            raw, rejected = decode_unit(unit)
        except OtlpError as exc:
            results[i] = UnitResult(None, 0, 0, [], str(exc))
            continue
        decoded.append((i, raw, rejected))
    raws = [raw for _, raw, _ in decoded if raw.num_rows]
    try:
        steps = normalise_raw(pa.concat_tables(raws), config, threads) if raws else None
    except OtlpError:
        if len(units) == 1:
            raise
        # One unit's spans break the shared call: normalise each alone to find it.
        return [result for unit in units
                for result in process_batch([unit], config, db, threads, hold=hold)]
    pending, offset, complete = None, 0, True
    if steps is not None and hold:
        pending, offset, complete = _held.write(steps, db, _scratch.get(threads))
    elif steps is not None:
        pending = Store(db).write_pending(steps, con=_scratch.get(threads))
    for i, raw, rejected in decoded:
        rows = raw.num_rows
        results[i] = UnitResult(pending if rows else None, offset, rows, rejected,
                                complete=complete)
        offset += rows
    return [r for r in results if r is not None]


_worker_config: Config | None = None


def init_worker(config: Config, segment_rows: int = SEGMENT_ROWS) -> None:
    global _worker_config
    _worker_config = config
    _held.segment_rows = segment_rows
    # Run when the worker process exits, as the pool shuts down (atexit is not run there).
    util.Finalize(_held, _held.close, exitpriority=10)


def process_in_worker(units: list[Unit], db: str) -> list[UnitResult]:
    assert _worker_config is not None, "worker not initialised"
    try:
        return process_batch(units, _worker_config, db, threads=1, hold=True)
    finally:
        give_back_memory()


def give_back_memory() -> None:
    """Return what the task freed to the system, so that the worker's resident memory
    falls back between tasks instead of staying at its peak (the workers of a run then
    rarely peak together)."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


try:
    _libc: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _libc = None


def process_batch(units: list[Unit], config: Config, db: str | os.PathLike[str],
                  threads: int | None = None, *, hold: bool = False) -> list[UnitResult]:
    try:
        return process_units(units, config, db, threads, hold=hold)
    except OtlpError as exc:  # a lone unit that cannot be normalised
        return [UnitResult(None, 0, 0, [], str(exc))]


class InlineExecutor(Executor):
    """Runs tasks at once, in this process: the small-input path, no workers to start."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
        return future
