"""Import spans from the Collector's ClickHouse traces table into a stepscope store.

`import_otel_table` reads the exporter's table (`otel_table`) one time window at a
time, each window at most a batch of spans, oldest first; each batch is reshaped into
raw spans by ClickHouse, normalised by the same `normalise` as OTLP ingest, and
appended to the store, which skips spans it already holds. So memory stays bounded by
two batches (the next is read while one is stored) whatever the table holds, an import
stopped halfway leaves whole batches, and running it again (or over an overlapping
`since`) stores nothing twice: that is how to keep a store up to date from a table
the Collector keeps writing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stepscope.clickhouse.client import ClickHouseError, Client, connect
from stepscope.clickhouse.location import ClickHouseLocation, LocationError, parse_location
from stepscope.config import Config
from stepscope.ingest.otel_table import (
    DEFAULT_TABLE,
    OtelTable,
    OtelTableError,
    Window,
    describe,
    plan_windows,
    raw_spans,
    select_sql,
)
from stepscope.ingest.units import OtlpError
from stepscope.ingest.workers import normalise_raw
from stepscope.stores import AnyStore

SOURCE_DATABASE = "otel"
# Spans per batch: normalising has a fixed cost of about 70 ms a call, which this many
# spans make small, while a batch's rows stay a few hundred MB at most in memory.
BATCH_SPANS = 50_000
# Rejected spans listed in the report (all are counted).
REJECTED_SHOWN = 20

Progress = Callable[[int, int], None]


class SourceError(ValueError):
    """The source cannot be read: bad URL, unreachable, no such table, wrong columns."""


@dataclass
class ImportReport:
    """What an import did."""

    source: str = ""
    spans_stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    batches: int = 0
    newest_span: datetime | None = None
    seconds: float = 0.0

    @property
    def spans_read(self) -> int:
        return self.spans_stored + self.duplicates + self.rejected

    @property
    def spans_per_second(self) -> float:
        return self.spans_read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary."""
        return {
            "source": self.source,
            "spans_read": self.spans_read,
            "spans_stored": self.spans_stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_examples": list(self.rejected_examples),
            "batches": self.batches,
            "newest_span": self.newest_span,
            "seconds": round(self.seconds, 3),
        }


class OtelSource:
    """An open session on the source ClickHouse and its checked traces table."""

    def __init__(self, location: ClickHouseLocation, client: Client, table: OtelTable):
        self.location = location
        self.client = client
        self.table = table

    @classmethod
    def open(cls, url: str, table: str = DEFAULT_TABLE) -> OtelSource:
        """Connect to `url` (the forms `--db` takes; database `otel` unless it names one)
        and check `table`. Raises SourceError naming the flag, table or column at fault."""
        try:
            location = parse_location(url, flag="--source", default_database=SOURCE_DATABASE)
        except LocationError as exc:
            raise SourceError(str(exc)) from None
        if location.kind == "chdb" and not Path(location.chdb_path).is_dir():
            raise SourceError(f"--source {url}: no chdb data directory at {location.chdb_path}")
        try:
            client = connect(location)
        except ClickHouseError as exc:
            raise SourceError(f"--source {location.display}: {exc}") from None
        try:
            return cls(location, client, describe(client, location.database, table))
        except OtelTableError as exc:
            client.close()
            raise SourceError(str(exc)) from None
        except ClickHouseError as exc:
            client.close()
            raise SourceError(f"--source {location.display}: {exc}") from None

    @property
    def label(self) -> str:
        """What the steps' `source_file` records: where the spans were read (no password)."""
        if self.location.kind == "chdb":
            return f"chdb://{self.location.chdb_path}#{self.table.display}"
        return f"{self.location.display.rsplit('/', 1)[0]}/{self.table.display}"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OtelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_otel_table(store: AnyStore, source: OtelSource, config: Config, *,
                      since: datetime | None = None, until: datetime | None = None,
                      batch_spans: int = BATCH_SPANS,
                      progress: Progress | None = None) -> ImportReport:
    """Import the spans that started in [since, until) from the exporter's table.

    `progress(spans_done, spans_total)` follows the batches. Raises SourceError when the
    source fails mid-way (the batches stored until then stay stored).
    """
    started = time.perf_counter()
    report = ImportReport(source=source.label)
    query = select_sql(source.table)

    def source_failed(exc: ClickHouseError) -> SourceError:
        return SourceError(f"--source {source.location.display}: {exc}")

    def read(window: Window) -> pa.Table:
        try:
            return source.client.query_arrow(query, {"lo": str(window.start_ns),
                                                     "hi": str(window.end_ns)})
        except ClickHouseError as exc:
            raise source_failed(exc) from None

    try:
        windows = plan_windows(source.client, source.table, _ns(since), _ns(until), batch_spans)
    except ClickHouseError as exc:
        raise source_failed(exc) from None
    total, done = sum(w.spans for w in windows), 0
    # The next batch is read by ClickHouse while this one is normalised and stored: at
    # most two batches are in memory.
    with ThreadPoolExecutor(1, thread_name_prefix="otel-read") as reader:
        ahead = reader.submit(read, windows[0]) if windows else None
        for number, window in enumerate(windows, start=1):
            assert ahead is not None
            rows = ahead.result()
            ahead = reader.submit(read, windows[number]) if number < len(windows) else None
            done += rows.num_rows
            _store_batch(rows, window, number, store, config, report)
            report.batches += 1
            if progress is not None:
                progress(done, max(total, done))
    report.seconds = time.perf_counter() - started
    return report


def _store_batch(rows: pa.Table, window: Window, number: int, store: AnyStore, config: Config,
                 report: ImportReport) -> None:
    """Reshape, normalise and append one batch, booking what became of its spans."""
    if rows.num_rows == 0:
        return
    raw, rejected = raw_spans(rows, report.source, number)
    report.rejected += rejected.num_rows
    room = REJECTED_SHOWN - len(report.rejected_examples)
    report.rejected_examples += rejected.column("reason").to_pylist()[:max(room, 0)]
    if raw.num_rows == 0:
        return
    try:
        steps = normalise_raw(raw, config)
    except OtlpError as exc:  # rejected whole, as a file would be; the others go on
        report.rejected += raw.num_rows
        if len(report.rejected_examples) < REJECTED_SHOWN:
            report.rejected_examples.append(
                f"batch {number} ({_iso(window.start_ns)} to {_iso(window.end_ns)}): {exc}")
        return
    result = store.append_steps(steps)
    report.spans_stored += result.stored
    report.duplicates += result.duplicates
    newest = _EPOCH + timedelta(microseconds=pc.max(raw.column("start_time_ns")).as_py() // 1000)
    if report.newest_span is None or newest > report.newest_span:
        report.newest_span = newest


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    return (value - _EPOCH) // timedelta(microseconds=1) * 1_000


def _iso(ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()

