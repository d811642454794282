"""The store: immutable Parquet segments plus a manifest, read through DuckDB.

Why not one DuckDB database file? DuckDB lets one process open a file for writing, and
while it does no other process can open it at all. stepscope has several writers
(`serve`, `ingest`) and several readers (dashboard, `kpis`, `alerts run`) at once, so:

* Each write produces a new Parquet *segment* (written to a temporary name, then renamed),
  and publishes it by atomically replacing `manifest.json`. Readers never lock anything:
  they read the manifest and query exactly the segments it lists, so they see whole
  writes or nothing, and new data within one manifest read (well under 5 seconds).
* Writers serialise only among themselves, on an advisory file lock held for the short
  publish step: deduplication against what is stored (so the same spans arriving twice
  count once; each segment keeps its sorted span keys beside it, `span_key_index`, so
  this costs a binary search rather than a scan of the store) and the manifest swap.
  Readers are never blocked by it.
* Small segments are compacted into larger ones, sorted by time, written outside the
  lock and swapped in under it.
  Replaced segments are kept on disk for a grace period so that a query that started
  before the swap can still read them.

The directory is what `--db` names (default `./stepscope.duckdb`). The store carries a
schema version; an older store is migrated in place, a newer one is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stepscope import span_key_index
from stepscope.schema import (
    DATASETS,
    SCHEMA_VERSION,
    STEP_COLUMNS,
    Dataset,
    arrow_schema,
    columns_at,
    create_table_sql,
)

DEFAULT_DB = "stepscope.duckdb"
STORE_FORMAT = "stepscope-store"
MARKER_FILE = "stepscope-store.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "write.lock"
COMPACTION_LOCK_FILE = "compaction.lock"
SEGMENT_DIR = "steps"
# Files written by `Store.write_pending`, not yet published (hidden: no reader lists them).
PENDING_PREFIX = ".pending-"
# A pending file this old belongs to no running writer.
STALE_PENDING_SECONDS = 24 * 3600

# Compaction: merge when this many segments are smaller than SMALL_SEGMENT_ROWS.
SMALL_SEGMENT_ROWS = 250_000
COMPACT_WHEN_SMALL_SEGMENTS = 16
COMPACTION_MEMORY = "512MB"
COMPACTION_SPILL_DIR = ".compaction-spill"
# Replaced segments stay readable this long for queries already running.
RETIRED_GRACE_SECONDS = 600
PARQUET_ROW_GROUP_ROWS = 122_880
PARQUET_ZSTD_LEVEL = 1
# Columns nearly unique per row: a dictionary would not shrink them, and building one
# costs about a third of writing a segment. Nested columns (the attribute maps) are
# compressed plainly too, which measured as small as with dictionaries.
UNDICTIONARIED = frozenset({
    "trace_id", "span_id", "parent_span_id", "span_key", "start_time_ns", "end_time_ns",
    "start_time", "duration_ms", "time_ns", "tool_call_id", "input_content", "output_content",
    "content",
})
# For long-lived writers' scratch connections (`allocator_flush_threshold`): DuckDB's
# allocator otherwise keeps up to 128 MB of freed memory per thread between queries.
WRITER_FREED_MEMORY_KEPT = "16MB"
# Rows per record batch when a query's result is streamed into a segment.
STREAM_BATCH_ROWS = 16_384
# What a store being created holds before its marker is written: a reader that finds only
# these is early, not looking at a foreign directory.
_STORE_ENTRIES = frozenset({SEGMENT_DIR, LOCK_FILE, MANIFEST_FILE})

# A 64-bit key per span that deduplication scans instead of two long strings.
SPAN_KEY_SQL = DATASETS["steps"].key_sql


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do (exit status 2)."""


def default_db_path() -> str:
    return os.environ.get("STEPSCOPE_DB") or DEFAULT_DB


@dataclass(frozen=True)
class Segment:
    file: str
    rows: int
    min_start_ns: int | None
    max_start_ns: int | None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class AppendResult:
    stored: int
    duplicates: int


class Store:
    """A stepscope store directory. Cheap to create; holds no open file or connection."""

    dialect = "duckdb"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    # -- opening, creating, migrating ---------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = False) -> Store:
        """Open a store, creating it when `create` is set, migrating an older one."""
        store = cls(path if path is not None else default_db_path())
        if store.path.is_file():
            raise StoreError(
                f"{store.path}: is a file, not a stepscope store directory; "
                "pass --db a directory path (it is created on first ingest)"
            )
        marker = store.path / MARKER_FILE
        if not marker.exists():
            if not create:
                if store.path.exists() and any(
                    entry.name not in _STORE_ENTRIES and not entry.name.startswith(".")
                    for entry in store.path.iterdir()
                ):
                    raise StoreError(f"{store.path}: not a stepscope store (no {MARKER_FILE})")
                raise StoreError(
                    f"{store.path}: no store here yet; load traces first with "
                    f"`stepscope ingest PATH --db {store.path}` (or run `stepscope demo`)"
                )
            store._create()
        store._check_version_and_migrate()
        return store

    @property
    def exists(self) -> bool:
        return (self.path / MARKER_FILE).exists()

    def _create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / SEGMENT_DIR).mkdir(exist_ok=True)
        with self.write_lock():
            if (self.path / MARKER_FILE).exists():
                return
            self._write_json(MANIFEST_FILE, {"generation": 0, "segments": [], "retired": []})
            self._write_json(MARKER_FILE, {
                "format": STORE_FORMAT,
                "schema_version": SCHEMA_VERSION,
                "created_at": datetime.now(UTC).isoformat(),
            })

    def marker(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / MARKER_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / MARKER_FILE}: unreadable: {exc}") from None
        if data.get("format") != STORE_FORMAT or not isinstance(data.get("schema_version"), int):
            raise StoreError(f"{self.path / MARKER_FILE}: not a stepscope store marker")
        return data

    @property
    def schema_version(self) -> int:
        return int(self.marker()["schema_version"])

    def _check_version_and_migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version} is newer than this stepscope "
                f"understands ({SCHEMA_VERSION}); upgrade stepscope to read it"
            )
        if version < SCHEMA_VERSION:
            self.migrate()

    def migrate(self) -> int:
        """Bring an older store to the current schema in place; returns the old version.

        Each segment is rewritten with the columns added since its version (as nulls, which
        is what an older stepscope knew about them) and swapped in through the manifest,
        so a reader sees either the old or the new segment set, never a mixture.
        """
        with self.write_lock():
            old = self.schema_version
            if old >= SCHEMA_VERSION:
                return old
            manifest = self.manifest()
            known = {c.name for c in columns_at(old)}
            con = scratch_connection()
            new_segments = []
            for seg in manifest["segments"]:
                select = ", ".join(
                    c.name if c.name in known else f"CAST(NULL AS {c.sql_type}) AS {c.name}"
                    for c in STEP_COLUMNS
                )
                src = self.path / seg["file"]
                rel = self._new_segment_name()
                self._copy_to_segment(
                    con, f"SELECT {select}, span_key FROM read_parquet('{_sql_path(src)}')", rel
                )
                new_segments.append({**seg, "file": rel})
            con.close()
            self._publish(manifest, remove=[s["file"] for s in manifest["segments"]],
                          add=new_segments)
            marker = self.marker()
            marker["schema_version"] = SCHEMA_VERSION
            marker["migrated_from"] = old
            marker["migrated_at"] = datetime.now(UTC).isoformat()
            self._write_json(MARKER_FILE, marker)
            return old

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, timeout_s: float = 300.0) -> Iterator[None]:
        """Serialise writers (not readers) on an advisory lock file."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a+b") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(
                            f"{self.path}: another writer has held the write lock for "
                            f"{timeout_s:.0f}s; is a stuck `stepscope` process running?"
                        ) from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append_steps(self, steps: pa.Table | duckdb.DuckDBPyRelation, *, compact: bool = True,
                     con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        """Store new steps; spans already stored (same trace and span id) are skipped.

        `steps` must have exactly the columns of `stepscope.schema.STEP_COLUMNS` (any order).
        The whole batch becomes visible at once, or not at all.
        """
        return self.append("steps", steps, compact=compact, con=con)

    def append(self, dataset: str, rows: pa.Table | duckdb.DuckDBPyRelation, *,
               compact: bool = True, con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        """Store new rows of a dataset (`stepscope.schema.DATASETS`), skipping stored keys.

        The rows stay in Arrow from end to end: DuckDB computes the keys and finds the
        duplicates, and the segment is written by Arrow's Parquet writer (DuckDB's writer
        costs three times as much on the attribute maps). The segment is written before
        the write lock is taken (`write_pending`); only the deduplication against what is
        stored and the manifest swap run under it, so concurrent writers (serve's worker
        processes) overlap their writes. Compaction follows, outside the lock too. `con`
        is a scratch connection to reuse.
        """
        with lent_or_scratch(con) as scratch:
            pending = self.write_pending(rows, dataset, con=scratch)
            result = self.publish_pending([(pending, [])], dataset=dataset, con=scratch)
        if compact and result.stored:
            self._compact_dataset(dataset)
        return result

    def write_pending(self, rows: pa.Table, dataset: str = "steps",
                      con: duckdb.DuckDBPyConnection | None = None) -> str:
        """Write rows as a segment no reader sees yet; `publish_pending` stores it.

        This is how parallel writers (ingest's worker processes) share the work: each
        writes its own Parquet file, outside the write lock, and the one process that
        knows which rows may be stored publishes the files one after another.
        """
        pending = self.open_pending(dataset)
        pending.write(rows, con=con)
        return pending.close()

    def open_pending(self, dataset: str = "steps") -> PendingSegment:
        """A pending segment to write batch after batch (each a row group), then close
        and publish: a writer that produces many batches makes one large segment instead
        of many small ones, which readers would otherwise pay for until compaction."""
        folder = SEGMENT_DIR if dataset == "steps" else f"datasets/{dataset}"
        rel = f"{folder}/{PENDING_PREFIX}{uuid.uuid4().hex}.parquet"
        return PendingSegment(self.path / rel, DATASETS[dataset])

    def publish_pending(self, files: list[tuple[str | os.PathLike[str], Iterable[tuple[int, int]]]],
                        *, dataset: str = "steps",
                        con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        """Store files of `write_pending`, all at once, and delete them.

        Each file comes with the ranges (offset, count) of its rows to leave out; they
        belong to input that was rejected and are not counted. Then rows repeated within
        the files and rows already stored count as duplicates. A file becomes a segment as
        it is when every row stays, which is the usual case; otherwise the rows kept are
        rewritten. Several files publish with one scan of the stored keys and one manifest
        swap. `con` is a scratch connection to reuse (opening one costs milliseconds).
        """
        spec = DATASETS[dataset]
        pendings = [Path(path) for path, _ in files]
        try:
            parts, totals = [], []
            for index, (pending, (_, exclude)) in enumerate(zip(pendings, files, strict=True)):
                keys = _key_rows(pq.read_table(pending, columns=_key_columns(spec)), spec)
                offered = np.ones(keys.num_rows, dtype=bool)
                for offset, count in exclude:
                    offered[offset:offset + count] = False
                totals.append(keys.num_rows)
                keys = keys.filter(pa.array(offered))
                parts.append(keys.append_column("_file", pa.array(
                    np.full(keys.num_rows, index, dtype=np.int32))))
            keys = pa.concat_tables(parts)
            # `_row` orders rows across the files too: the first file's copy wins.
            order = keys.column("_file").to_numpy().astype(np.int64) << 40 | keys.column("_row").to_numpy()
            keys = keys.set_column(keys.schema.get_field_index("_row"), "_row", pa.array(order))
            with lent_or_scratch(con) as scratch:
                keep = _first_of_each_key(scratch, keys, spec)
                with self.write_lock():
                    manifest = self.manifest()
                    keep = _not_stored(scratch, keys, keep, spec,
                                       self._segment_paths(manifest, dataset))
                    kept_file = keys.column("_file").to_numpy()[keep]
                    kept_row = keys.column("_row").to_numpy()[keep] & ((1 << 40) - 1)
                    stored_keys = keys.column("span_key").to_numpy()[keep]
                    kept_times = keys.column(spec.time_column).take(pa.array(keep))
                    segments = []
                    for index, pending in enumerate(pendings):
                        in_file = kept_file == index
                        rows = kept_row[in_file]
                        if len(rows) == 0:
                            continue
                        rel = self._new_segment_name(dataset)
                        if len(rows) == totals[index]:
                            bounds = pc.min_max(kept_times.filter(pa.array(in_file)))
                            segments.append(Segment(rel, len(rows), bounds["min"].as_py(),
                                                    bounds["max"].as_py()).to_json())
                            os.replace(pending, self.path / rel)
                        else:
                            table = pq.read_table(pending).take(pa.array(rows))
                            segments.append(self._write_segment(rel, [table], table.schema,
                                                                spec.time_column))
                        span_key_index.write(self.path / rel, stored_keys[in_file])
                    if segments:
                        self._publish(manifest, add=segments, dataset=dataset)
            stored = len(keep)
            return AppendResult(stored=stored, duplicates=keys.num_rows - stored)
        finally:
            for pending in pendings:
                pending.unlink(missing_ok=True)

    def discard_pending(self, path: str | os.PathLike[str]) -> None:
        """Delete a file of `write_pending` that will not be stored."""
        Path(path).unlink(missing_ok=True)

    def sweep_stale_pending(self, older_than_s: float = STALE_PENDING_SECONDS) -> int:
        """Delete pending files a writer left behind (it was killed before publishing)."""
        cutoff = time.time() - older_than_s
        removed = 0
        for folder in (self.path / SEGMENT_DIR, *(self.path / "datasets").glob("*")):
            for item in folder.glob(f"{PENDING_PREFIX}*.parquet"):
                with contextlib.suppress(OSError):
                    if item.stat().st_mtime < cutoff:
                        item.unlink()
                        removed += 1
        return removed

    def compact(self, force: bool = False) -> int:
        """Merge small segments of every dataset; returns how many segments were merged."""
        return sum(self._compact_dataset(dataset, force=force, wait=True) for dataset in DATASETS)

    def _compact_dataset(self, dataset: str = "steps", force: bool = False,
                         wait: bool = False) -> int:
        """Merge the small segments of a dataset, sorted by time, into one.

        The merged segment is written outside the write lock, so writers go on meanwhile
        (segments are immutable); under the lock it replaces the small ones only if they
        are all still there (a retention run may have deleted some), else it is dropped.
        One compaction runs at a time: with `wait` false, a writer that finds another
        compacting leaves it to that one.
        """
        with self._compaction_lock(wait) as held:
            if not held:
                return 0
            small = self._small_segments(self.manifest(), dataset)
            if len(small) < (2 if force else COMPACT_WHEN_SMALL_SEGMENTS):
                with self.write_lock():
                    self._sweep_retired(self.manifest())
                return 0
            time_column = DATASETS[dataset].time_column
            rel = self._new_segment_name(dataset)
            tmp_rel = str(Path(rel).with_name(f"{PENDING_PREFIX}{Path(rel).name}"))
            # A bounded sort: DuckDB spills beyond the limit instead of holding every row.
            con = scratch_connection(threads=1, memory_limit=COMPACTION_MEMORY,
                                     temp_directory=str(self.path / COMPACTION_SPILL_DIR))
            try:
                files = [str(self.path / s["file"]) for s in small]
                seg = self._copy_to_segment(
                    con, f"SELECT * FROM read_parquet({_sql_list(files)}) ORDER BY {time_column}",
                    tmp_rel, time_column,
                )
            finally:
                con.close()
            # The merged segment holds exactly the small ones' keys.
            span_key_index.write(self.path / rel, np.concatenate(
                [span_key_index.load(file) for file in files]))
            with self.write_lock():
                manifest = self.manifest()
                present = {s["file"] for s in _segments_of(manifest, dataset)}
                if not all(s["file"] in present for s in small):
                    (self.path / tmp_rel).unlink(missing_ok=True)
                    span_key_index.remove(self.path / rel)
                    return 0
                os.replace(self.path / tmp_rel, self.path / rel)
                seg["file"], seg["compacted"] = rel, True
                self._publish(manifest, remove=[s["file"] for s in small], add=[seg],
                              dataset=dataset)
            return len(small)

    @staticmethod
    def _small_segments(manifest: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
        # A compaction result is never small again: rewriting it would copy rows twice over.
        return [s for s in _segments_of(manifest, dataset)
                if s["rows"] < SMALL_SEGMENT_ROWS and not s.get("compacted")]

    @contextlib.contextmanager
    def _compaction_lock(self, wait: bool) -> Iterator[bool]:
        """Held by the one process compacting; yields whether this one got it."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / COMPACTION_LOCK_FILE, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def delete_steps_before(self, cutoff_ns: int) -> int:
        """Retention: drop runs that started before the cutoff (whole traces, not halves).

        Returns the number of steps deleted; the runs' content events go with them.
        """
        with self.write_lock():
            manifest = self.manifest()
            files = self._segment_paths(manifest)
            if not files:
                return 0
            con = scratch_connection()
            try:
                src = f"read_parquet({_sql_list(files)})"
                con.execute(
                    f"CREATE TABLE old_traces AS SELECT trace_id FROM {src} "
                    f"GROUP BY trace_id HAVING max(start_time_ns) < {int(cutoff_ns)}"
                )
                removed = con.execute(
                    f"SELECT count(*) FROM {src} WHERE trace_id IN (SELECT trace_id FROM old_traces)"
                ).fetchall()[0][0]
                if removed == 0:
                    return 0
                for dataset, spec in DATASETS.items():
                    current = _segments_of(manifest, dataset)
                    if not current:
                        continue
                    source = f"read_parquet({_sql_list(self._segment_paths(manifest, dataset))})"
                    seg = self._copy_to_segment(
                        con,
                        f"SELECT * FROM {source} WHERE trace_id NOT IN "
                        f"(SELECT trace_id FROM old_traces) ORDER BY {spec.time_column}",
                        self._new_segment_name(dataset), spec.time_column,
                    )
                    adds = [seg] if seg["rows"] else []
                    if not seg["rows"]:
                        (self.path / seg["file"]).unlink(missing_ok=True)
                        span_key_index.remove(self.path / seg["file"])
                    manifest = self._publish(manifest, remove=[s["file"] for s in current],
                                             add=adds, dataset=dataset)
            finally:
                con.close()
            return removed

    # -- reading ------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / MANIFEST_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / MANIFEST_FILE}: unreadable: {exc}") from None

    def segment_files(self, dataset: str = "steps") -> list[str]:
        return self._segment_paths(self.manifest(), dataset)

    def row_count(self, dataset: str = "steps") -> int:
        return sum(int(s["rows"]) for s in _segments_of(self.manifest(), dataset))

    def generation(self) -> int:
        """A number that changes whenever the stored rows may have changed."""
        return int(self.manifest().get("generation", 0))

    def first_start_ns(self) -> int | None:
        """The start of the earliest stored step, from the manifest (no query)."""
        starts = [s["min_start_ns"] for s in _segments_of(self.manifest(), "steps")
                  if s.get("min_start_ns") is not None]
        return min(starts) if starts else None

    def __str__(self) -> str:
        return str(self.path)

    def connect(self) -> ReadConnection:
        """A read-only view of the store for analytics: a DuckDB connection with `steps`."""
        return ReadConnection(self)

    # -- internals ----------------------------------------------------------------------

    def _segment_paths(self, manifest: dict[str, Any], dataset: str = "steps") -> list[str]:
        return [str(self.path / s["file"]) for s in _segments_of(manifest, dataset)]

    def _new_segment_name(self, dataset: str = "steps") -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = SEGMENT_DIR if dataset == "steps" else f"datasets/{dataset}"
        return f"{folder}/seg-{stamp}-{uuid.uuid4().hex[:10]}.parquet"

    def _copy_to_segment(self, con: duckdb.DuckDBPyConnection, query: str, rel: str,
                         time_column: str = "start_time_ns") -> dict:
        """Write a query's rows to a new segment file, streamed in record batches."""
        reader = con.sql(query).to_arrow_reader(STREAM_BATCH_ROWS)
        return self._write_segment(rel, reader, reader.schema, time_column)

    def _write_segment(self, rel: str, batches: Iterable[pa.Table | pa.RecordBatch],
                       schema: pa.Schema, time_column: str) -> dict:
        """Write rows to a new segment file (temporary name, then rename); its manifest
        entry, with the row count and time range taken from the rows as they are written."""
        target = self.path / rel
        tmp = target.with_name(f".{target.name}.tmp")
        rows, lo, hi = self._write_file(tmp, batches, schema, time_column)
        os.replace(tmp, target)
        return Segment(rel, rows, lo, hi).to_json()

    @staticmethod
    def _write_file(target: Path, batches: Iterable[pa.Table | pa.RecordBatch],
                    schema: pa.Schema, time_column: str) -> tuple[int, int | None, int | None]:
        """Write rows as Parquet and fsync; (rows, first time, last time)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        rows, lo, hi = 0, None, None
        with _parquet_writer(target, schema) as writer:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                writer.write(batch, row_group_size=PARQUET_ROW_GROUP_ROWS)
                rows += batch.num_rows
                bounds = pc.min_max(batch.column(time_column))
                b_lo, b_hi = bounds["min"].as_py(), bounds["max"].as_py()
                if b_lo is not None:
                    lo = b_lo if lo is None else min(lo, b_lo)
                    hi = b_hi if hi is None else max(hi, b_hi)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
        return rows, lo, hi

    def _publish(self, manifest: dict[str, Any], *, add: list[dict] = (),
                 remove: list[str] = (), dataset: str = "steps") -> dict[str, Any]:
        removed = set(remove)
        now = time.time()
        kept = [s for s in _segments_of(manifest, dataset) if s["file"] not in removed]
        new = {
            **manifest,
            "generation": int(manifest.get("generation", 0)) + 1,
            "retired": list(manifest.get("retired", []))
            + [{"file": f, "retired_at": now} for f in remove],
        }
        if dataset == "steps":
            new["segments"] = kept + list(add)
        else:
            new["datasets"] = {**manifest.get("datasets", {}), dataset: kept + list(add)}
        self._write_json(MANIFEST_FILE, new)
        return new

    def _sweep_retired(self, manifest: dict[str, Any]) -> None:
        """Delete replaced segments once no query can still be reading them."""
        now = time.time()
        keep, gone = [], []
        for item in manifest.get("retired", []):
            (gone if now - item["retired_at"] > RETIRED_GRACE_SECONDS else keep).append(item)
        if not gone:
            return
        for item in gone:
            (self.path / item["file"]).unlink(missing_ok=True)
            span_key_index.remove(self.path / item["file"])
        self._write_json(MANIFEST_FILE, {**manifest, "retired": keep,
                                         "generation": manifest["generation"] + 1})

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        target = self.path / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)


class PendingSegment:
    """A pending segment being written (`Store.open_pending`): rows go in batch after
    batch, at known offsets, and `close` completes the file for `publish_pending`."""

    def __init__(self, path: Path, spec: Dataset):
        self.path = path
        self.spec = spec
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, rows: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> int:
        """Append rows (a table conforming to the dataset, key column added here); returns
        the offset of the first of them in the segment."""
        with lent_or_scratch(con) as scratch:
            table = conforming_rows(scratch, rows, self.spec)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _parquet_writer(self.path, table.schema)
        offset = self.rows
        if table.num_rows:
            self._writer.write(table, row_group_size=PARQUET_ROW_GROUP_ROWS)
            self.rows += table.num_rows
        return offset

    def close(self) -> str:
        """Complete the file (footer, fsync); returns its path."""
        if self._writer is None:
            self._writer = _parquet_writer(self.path, arrow_schema(self.spec.columns).append(
                pa.field("span_key", pa.uint64())))
        self._writer.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())
        return str(self.path)


def _parquet_writer(target: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer every segment is written with: zstd at level 1, dictionaries only on
    columns that repeat (see UNDICTIONARIED)."""
    dictionaried = [name for name in schema.names if name not in UNDICTIONARIED]
    return pq.ParquetWriter(target, schema, compression="zstd",
                            compression_level=PARQUET_ZSTD_LEVEL, use_dictionary=dictionaried)


class ReadConnection:
    """A DuckDB connection whose views (`steps`, `content_events`) follow the manifest.

    `refresh()` is cheap when nothing changed (one small file read), so long-lived readers
    such as the dashboard call it before each query to see new data.
    """

    dialect = "duckdb"

    def __init__(self, store: Store):
        self.store = store
        self.con = scratch_connection()
        self._generation: int | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Point `steps` at the current segments; returns True when they changed."""
        manifest = self.store.manifest()
        generation = int(manifest.get("generation", 0))
        if generation == self._generation:
            return False
        for name, spec in DATASETS.items():
            files = self.store._segment_paths(manifest, name)
            names = ", ".join(c.name for c in spec.columns)
            if files:
                source = f"read_parquet({_sql_list(files)})"
            else:
                empty = f"empty_{name}"
                self.con.execute(create_table_sql(empty, spec.columns).replace(
                    f"CREATE TABLE {empty}", f"CREATE OR REPLACE TEMP TABLE {empty}"))
                source = empty
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {names} FROM {source}")
        self._generation = generation
        return True

    def execute(self, query: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(query, params) if params is not None else self.con.execute(query)

    # The calls the analytics make of any store's connection (ClickHouse's too:
    # stepscope.clickhouse.reader), each taking SQL in the connection's dialect.

    def segments(self) -> list[str]:
        """The segment files the views read now (as of the last `refresh`)."""
        return self.store.segment_files()

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self.con.sql(sql, params=params).to_arrow_table()

    def create_temp_table(self, table: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", params)

    def insert_into(self, table: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.execute(f"INSERT INTO {table} {sql}", params)

    def delete_where(self, table: str, condition: str) -> None:
        self.execute(f"DELETE FROM {table} WHERE {condition}")

    def drop_table(self, table: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {table}")

    def register_arrow(self, table: str, data: pa.Table) -> None:
        """A temporary table holding a copy of an Arrow table (e.g. the price table)."""
        self.con.register(f"{table}_arrow", data)
        self.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
        self.con.unregister(f"{table}_arrow")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make many inserts one transaction.

        DuckDB checkpoints its temporary storage when a commit has written more than
        `checkpoint_threshold`, compressing every temporary table again: with the run
        tables of 10M steps (2.4 GB) each segment's insert paid about 0.3 s for it. One
        commit checkpoints once.
        """
        self.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        return self.con.sql(query)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ReadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _segments_of(manifest: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    if dataset == "steps":
        return list(manifest.get("segments", []))
    return list(manifest.get("datasets", {}).get(dataset, []))


def conforming_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table | duckdb.DuckDBPyRelation,
                spec: Dataset) -> pa.Table:
    """The rows as an Arrow table of exactly the dataset's columns, types and order, plus
    its 64-bit key column `span_key`. A table that already conforms is not copied."""
    schema = arrow_schema(spec.columns)
    if isinstance(rows, pa.Table) and all(
        name in rows.column_names and rows.schema.field(name).type == field.type
        for name, field in zip(schema.names, schema, strict=True)
    ):
        table = rows.select(schema.names)
    else:
        con.register("incoming", rows)
        casts = ", ".join(f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in spec.columns)
        table = con.sql(f"SELECT {casts} FROM incoming").to_arrow_table().cast(schema)
        con.unregister("incoming")
    con.register("incoming", table.select(list(spec.key_columns)))
    keys = con.sql(f"SELECT {spec.key_sql} AS span_key FROM incoming").to_arrow_table()
    con.unregister("incoming")
    return table.append_column("span_key", keys.column(0).cast(pa.uint64()))


def _key_columns(spec: Dataset) -> list[str]:
    names = [*spec.key_columns, "span_key"]
    return names if spec.time_column in names else [*names, spec.time_column]


def _key_rows(table: pa.Table, spec: Dataset) -> pa.Table:
    """The key columns, the time column and each row's position, for DuckDB to scan."""
    return table.select(_key_columns(spec)).append_column(
        "_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _first_of_each_key(con: duckdb.DuckDBPyConnection, keys: pa.Table,
                       spec: Dataset) -> np.ndarray:
    """Indexes into `keys` of the rows to keep: a key repeated within it, once (the
    earliest)."""
    everything = np.arange(keys.num_rows)
    con.register("fresh", keys.append_column("_i", pa.array(everything)))
    try:
        distinct = con.execute("SELECT count(DISTINCT span_key) FROM fresh").fetchall()[0][0]
        if distinct == keys.num_rows:  # distinct 64-bit keys: distinct rows
            return everything
        names = ", ".join(spec.key_columns)
        return con.sql(
            f"SELECT _i FROM fresh QUALIFY row_number() OVER "
            f"(PARTITION BY {names} ORDER BY {spec.time_column}, _row) = 1 ORDER BY _i"
        ).to_arrow_table().column(0).to_numpy()
    finally:
        con.unregister("fresh")


def _not_stored(con: duckdb.DuckDBPyConnection, keys: pa.Table, keep: np.ndarray,
                spec: Dataset, files: list[str]) -> np.ndarray:
    """The indexes of `keep` whose keys are not in the stored segments yet.

    The segments' key indexes (`span_key_index`) say which keys may be stored and where;
    only those candidates are confirmed on the key columns of those segments, so the
    usual write, all new spans, reads no segment at all.
    """
    if not files or len(keep) == 0:
        return keep
    fresh_keys = keys.column("span_key").to_numpy()[keep]
    probe = np.unique(fresh_keys)
    files, found = span_key_index.segments_holding(files, probe)
    if not files:
        return keep
    candidates = np.flatnonzero(np.isin(fresh_keys, probe[found]))
    names = ", ".join(spec.key_columns)
    con.register("fresh", keys.take(pa.array(keep[candidates])).set_column(
        keys.schema.get_field_index("_row"), "_row", pa.array(candidates)))
    try:
        stored = con.sql(
            f"SELECT _row FROM fresh WHERE ({names}) IN ("
            f"SELECT ({names}) FROM read_parquet({_sql_list(files)}) "
            f"WHERE span_key IN (SELECT span_key FROM fresh))"
        ).to_arrow_table().column(0).to_numpy()
    finally:
        con.unregister("fresh")
    if len(stored) == 0:
        return keep
    mask = np.ones(len(keep), dtype=bool)
    mask[stored] = False
    return keep[mask]


def scratch_connection(**config: str | int) -> duckdb.DuckDBPyConnection:
    """A scratch in-memory DuckDB connection (with DuckDB `config`) that never draws
    DuckDB's progress bar.

    DuckDB prints the bar on stdout for any query slower than two seconds, which would
    corrupt the JSON or CSV that commands such as `stepscope ingest` print there.
    """
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    return con


@contextlib.contextmanager
def lent_or_scratch(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """`con` when the caller lends one, else a scratch connection for the block."""
    if con is not None:
        yield con
        return
    own = scratch_connection()
    try:
        yield own
    finally:
        own.close()


def _sql_path(path: str | os.PathLike[str]) -> str:
    return str(path).replace("'", "''")


def _sql_list(files: list[str]) -> str:
    return "[" + ", ".join(f"'{_sql_path(f)}'" for f in files) + "]"
