"""The work of ingest's worker processes: units decoded, normalised, set aside, appended.

Each function here runs in a worker process for large inputs, or in the calling process
for small ones (`InlineExecutor`). A unit's steps are written to a temporary Arrow file
rather than sent back, so the parent holds no data; appends read those files back.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from stepscope.config import Config
from stepscope.ingest.normalise import normalise
from stepscope.ingest.otlp_decode import decode_unit
from stepscope.ingest.units import OtlpError, Unit
from stepscope.store import AppendResult, Store


@dataclass
class UnitResult:
    """A decoded unit: its steps in a temporary Arrow file, or why it was rejected."""

    spill: str | None
    rows: int
    rejected_records: list[tuple[int, str]]
    error: str | None = None


def normalised_steps(unit: Unit, config: Config,
                     threads: int | None = None) -> tuple[pa.Table | None, list[tuple[int, str]]]:
    """Decode and normalise one unit: (steps or None when empty, records rejected alone).

    Raises OtlpError when the unit (and so its file) must be rejected.
    """
    raw, rejected = decode_unit(unit)
    return (_normalise(raw, config, threads) if raw.num_rows else None), rejected


def _normalise(raw: pa.Table, config: Config, threads: int | None) -> pa.Table:
    # A connection per call: DuckDB keeps what a query allocated until its connection
    # closes (about 200 MB per unit here), and opening one costs a millisecond.
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        # DuckDB draws a progress bar on stdout for slow queries; not from a library.
        con.execute("SET enable_progress_bar = false")
        steps = normalise(con, raw, config)
    except (duckdb.Error, pa.ArrowException, ValueError) as exc:
        raise OtlpError(f"could not normalise its spans: {exc}") from None
    finally:
        con.close()
    if steps.num_rows != raw.num_rows:
        raise OtlpError(f"normalising {raw.num_rows} spans gave {steps.num_rows} steps")
    return steps


def process_units(units: list[Unit], config: Config, spill_dir: str,
                  threads: int | None = None) -> list[UnitResult]:
    """Decode units (of one file or several small ones) and normalise them together.

    Normalising has a fixed cost per call (a large query to plan), so small units from
    many small files share one call; the steps are then cut back into one temporary
    Arrow file per unit, since each file is kept or rejected on its own.
    """
    results: list[UnitResult | None] = [None] * len(units)
    decoded: list[tuple[int, pa.Table, list[tuple[int, str]]]] = []
    for i, unit in enumerate(units):
        try:
            raw, rejected = decode_unit(unit)
        except OtlpError as exc:
            results[i] = UnitResult(None, 0, [], str(exc))
            continue
        decoded.append((i, raw, rejected))
    raws = [raw for _, raw, _ in decoded if raw.num_rows]
    try:
        steps = _normalise(pa.concat_tables(raws), config, threads) if raws else None
    except OtlpError:
        if len(units) == 1:
            raise
        # One unit's spans break the shared call: normalise each alone to find it.
        return [result for unit in units
                for result in process_batch([unit], config, spill_dir, threads)]
    offset = 0
    for i, raw, rejected in decoded:
        if raw.num_rows == 0 or steps is None:
            results[i] = UnitResult(None, 0, rejected)
            continue
        part = steps.slice(offset, raw.num_rows)
        offset += raw.num_rows
        path = os.path.join(spill_dir, f"{uuid.uuid4().hex}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, part.schema) as writer:
            writer.write_table(part)
        results[i] = UnitResult(path, part.num_rows, rejected)
    return [r for r in results if r is not None]


def append_spilled(db: str | os.PathLike[str], files: list[str]) -> AppendResult:
    """Append the steps held in temporary Arrow files to the store, then delete them."""
    tables = []
    for name in files:
        with pa.OSFile(name, "rb") as source:
            tables.append(pa.ipc.open_file(source).read_all())
    # No compaction from here: merging small segments currently sorts all of them in
    # memory at once, which a large ingest would turn into gigabytes. The segments written
    # here are large already; `stepscope compact` merges them when wanted.
    result = Store(db).append_steps(pa.concat_tables(tables), compact=False)
    for name in files:
        os.unlink(name)
    return result


_worker_config: Config | None = None


def init_worker(config: Config) -> None:
    global _worker_config
    _worker_config = config


def process_in_worker(units: list[Unit], spill_dir: str) -> list[UnitResult]:
    assert _worker_config is not None, "worker not initialised"
    return process_batch(units, _worker_config, spill_dir, threads=1)


def process_batch(units: list[Unit], config: Config, spill_dir: str,
                   threads: int | None = None) -> list[UnitResult]:
    try:
        return process_units(units, config, spill_dir, threads)
    except OtlpError as exc:  # a lone unit that cannot be normalised
        return [UnitResult(None, 0, [], str(exc))]


class InlineExecutor(Executor):
    """Runs tasks at once, in this process: the small-input path, no workers to start."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
        return future
