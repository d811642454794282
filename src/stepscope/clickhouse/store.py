"""A stepscope store in ClickHouse: the same steps table, for more than one machine.

The embedded store (stepscope.store) serialises its writers on a file lock; here the
writers are stateless and never coordinate, so any number of `stepscope serve` or
`stepscope ingest` processes, on any machines, can write one database:

1. A batch is checked against what is stored (a primary-key lookup of its traces) so
   that the ingest summary can count duplicates, and repeated rows within the batch are
   dropped, as in the embedded store.
2. The rest is inserted with a deduplication token made from the batch's span keys: if
   two writers insert the same batch at once, or a writer retries one whose answer it
   lost, ClickHouse keeps the first and drops the others whole.
3. Whatever still arrives twice (two different batches that overlap, sent at the same
   moment) is one row after the ReplacingMergeTree's merges, and the `steps` view reads
   FINAL, so no query ever counts it twice (stepscope.clickhouse.tables).

Files between ingest workers and the parent, `stepscope serve`'s spool and alert state
stay local, in the location's state directory (`path`), as in the embedded store.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stepscope.clickhouse.client import Client, connect
from stepscope.clickhouse.location import ClickHouseLocation, parse_location
from stepscope.clickhouse.reader import ClickHouseReadConnection
from stepscope.clickhouse.tables import META_TABLE, content_events_ddl, meta_ddl, steps_ddl
from stepscope.schema import DATASETS, SCHEMA_VERSION, Dataset
from stepscope.store import (
    STORE_FORMAT,
    AppendResult,
    Store,
    StoreError,
    conforming_rows,
    lent_or_scratch,
)

DATA_TABLES = {"steps": "steps_data", "content_events": "content_events_data"}
# Traces looked up per query when counting a batch's duplicates.
LOOKUP_TRACES = 5_000
# Rows of a pending file inserted at a time.
PUBLISH_BATCH_ROWS = 50_000


class ClickHouseStore:
    """A stepscope store in a ClickHouse database. Cheap to create; connects on first use."""

    dialect = "clickhouse"

    def __init__(self, location: ClickHouseLocation):
        self.location = location
        self.path = Path(location.state_dir)
        self._client: Client | None = None

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> ClickHouseStore:
        store = cls(parse_location(url))
        if not store.exists:
            if not create:
                raise StoreError(
                    f"{store.location.display}: no stepscope store in this database yet; load "
                    f"traces first with `stepscope ingest PATH --db {store.location.display}`")
            store._create()
        version = store.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{store.location.display}: store schema version {version} is newer "
                             f"than this stepscope understands ({SCHEMA_VERSION}); upgrade stepscope")
        if version < SCHEMA_VERSION:
            raise StoreError(f"{store.location.display}: store schema version {version} is older "
                             f"than {SCHEMA_VERSION}; migrating ClickHouse stores is not supported")
        return store

    def __str__(self) -> str:
        return self.location.display

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.location)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> dict[str, Any]:          # worker processes connect anew
        return {"location": self.location, "path": self.path, "_client": None}

    # -- layout -------------------------------------------------------------------------

    def _table(self, name: str) -> str:
        return f"{self.location.database}.{name}"

    @property
    def exists(self) -> bool:
        rows = self.client.query_arrow(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.location.database, "t": META_TABLE})
        return bool(rows.column("n")[0].as_py())

    def _create(self) -> None:
        database = self.location.database
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        for statement in (*steps_ddl(database, self.location.retention_days,
                                     self.location.partition),
                          *content_events_ddl(database, self.location.retention_days),
                          *meta_ddl(database)):
            self.client.command(statement)
        if self._meta().get("format") is None:
            now = datetime.now(UTC).isoformat()
            self._write_meta({"format": STORE_FORMAT, "schema_version": str(SCHEMA_VERSION),
                              "created_at": now})
        self.path.mkdir(parents=True, exist_ok=True)

    def _meta(self) -> dict[str, str]:
        rows = self.client.query_arrow(f"SELECT key, argMax(value, written_at) AS value "
                                       f"FROM {self._table(META_TABLE)} GROUP BY key")
        return dict(zip(rows.column("key").to_pylist(), rows.column("value").to_pylist(), strict=True))

    def _write_meta(self, values: dict[str, str]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        self.client.insert_arrow(self._table(META_TABLE), pa.table({
            "key": list(values), "value": list(values.values()),
            "written_at": pa.array([now] * len(values), pa.timestamp("us")),
        }))

    @property
    def schema_version(self) -> int:
        meta = self._meta()
        if meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.location.display}: the database holds a {META_TABLE} table "
                             "that is not a stepscope store's")
        return int(meta["schema_version"])

    # -- writing ------------------------------------------------------------------------

    def append_steps(self, steps: pa.Table, *, compact: bool = True,
                     con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        return self.append("steps", steps, compact=compact, con=con)

    def append(self, dataset: str, rows: pa.Table, *, compact: bool = True,
               con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        """Store new rows of a dataset; rows already stored count as duplicates."""
        spec = DATASETS[dataset]
        with lent_or_scratch(con) as scratch:
            table = conforming_rows(scratch, rows, spec)
        return self._insert_new(table, spec)

    def publish_pending(self, files: list[tuple[str | os.PathLike[str], Any]], *,
                        dataset: str = "steps",
                        con: duckdb.DuckDBPyConnection | None = None) -> AppendResult:
        """Insert pending segments (leaving out the given row ranges) and delete them.

        Ingest workers write them as for the embedded store, into `path` (`Store.open_pending`
        on the state directory): only their rows come here.

        A file is read and inserted `PUBLISH_BATCH_ROWS` at a time, so a large pending
        segment never sits in memory whole; a span repeated in a later batch is found
        stored by then and counts as a duplicate, as within one batch.
        """
        spec = DATASETS[dataset]
        stored = duplicates = 0
        try:
            for path, exclude in files:
                offset = 0
                for batch in pq.ParquetFile(path).iter_batches(PUBLISH_BATCH_ROWS):
                    keep = np.ones(batch.num_rows, dtype=bool)
                    for start, count in exclude:
                        lo, hi = max(start - offset, 0), min(start + count - offset, batch.num_rows)
                        if lo < hi:
                            keep[lo:hi] = False
                    offset += batch.num_rows
                    table = pa.Table.from_batches([batch])
                    result = self._insert_new(table if keep.all() else table.filter(pa.array(keep)), spec)
                    stored += result.stored
                    duplicates += result.duplicates
            return AppendResult(stored=stored, duplicates=duplicates)
        finally:
            for path, _ in files:
                Path(path).unlink(missing_ok=True)

    def discard_pending(self, path: str | os.PathLike[str]) -> None:
        Path(path).unlink(missing_ok=True)

    def sweep_stale_pending(self) -> int:
        return Store(self.path).sweep_stale_pending() if self.path.exists() else 0

    def _insert_new(self, table: pa.Table, spec: Dataset) -> AppendResult:
        offered = table.num_rows
        if offered == 0:
            return AppendResult(0, 0)
        table = _first_of_each_key(table, spec)
        table = self._not_stored(table, spec)
        if table.num_rows:
            token = _dedup_token(table, spec)
            self.client.insert_arrow(self._table(DATA_TABLES[spec.name]), table, dedup_token=token)
        return AppendResult(stored=table.num_rows, duplicates=offered - table.num_rows)

    def _not_stored(self, table: pa.Table, spec: Dataset) -> pa.Table:
        """The rows whose keys the database does not hold yet (a primary-key lookup)."""
        keys = list(spec.key_columns)
        traces = pc.unique(table.column("trace_id")).to_pylist()
        stored = []
        for start in range(0, len(traces), LOOKUP_TRACES):
            chunk = traces[start:start + LOOKUP_TRACES]
            stored.append(self.client.query_arrow(
                f"SELECT DISTINCT {', '.join(keys)} FROM {self._table(DATA_TABLES[spec.name])} "
                "WHERE trace_id IN {traces:Array(String)}",
                {"traces": chunk}))
        found = pa.concat_tables(stored) if stored else None
        if found is None or found.num_rows == 0:
            return table
        found = found.select(keys).cast(table.select(keys).schema)
        positions = table.select(keys).append_column("_row", pa.array(np.arange(table.num_rows)))
        fresh = positions.join(found, keys=keys, join_type="left anti")
        rows = np.sort(fresh.column("_row").to_numpy())
        return table.take(pa.array(rows))

    def compact(self, force: bool = False) -> int:
        """ClickHouse merges parts itself; with `force`, merge now (and drop duplicates)."""
        if force:
            for table in DATA_TABLES.values():
                self.client.command(f"OPTIMIZE TABLE {self._table(table)} FINAL")
        return 0

    def delete_steps_before(self, cutoff_ns: int) -> int:
        """Retention: drop runs whose last step started before the cutoff (whole traces)."""
        steps = self._table("steps_data")
        old = (f"SELECT trace_id FROM {steps} GROUP BY trace_id "
               f"HAVING max(start_time_ns) < {int(cutoff_ns)}")
        count = self.client.query_arrow(
            f"SELECT count() AS n FROM {self._table('steps')} WHERE trace_id IN ({old})")
        removed = int(count.column("n")[0].as_py())
        if removed:
            for table in DATA_TABLES.values():
                self.client.command(f"DELETE FROM {self._table(table)} WHERE trace_id IN ({old}) "
                                    "SETTINGS mutations_sync = 2")
        return removed

    # -- reading ------------------------------------------------------------------------

    def connect(self) -> ClickHouseReadConnection:
        return ClickHouseReadConnection(self)

    def row_count(self, dataset: str = "steps") -> int:
        view = "steps" if dataset == "steps" else dataset
        rows = self.client.query_arrow(f"SELECT count() AS n FROM {self._table(view)}")
        return int(rows.column("n")[0].as_py())

    def partitions(self, client: Client | None = None) -> list[str]:
        """The steps table's partitions, oldest first: `YYYY-MM-DD:identity` for days,
        `YYYY-MM-DDTHH:identity` for hours (`partition=hour`).

        The identity is the partition's highest block number and its latest mutation: new
        inserts raise the first, mutations (retention deletes) the second, and merges
        change neither (a merged part keeps its inputs' block range, and the data version
        of a part no mutation touched is its first block), so it changes exactly when the
        partition's rows may have.
        """
        rows = (client or self.client).query_arrow(
            "SELECT partition_id, max(max_block_number) AS block, "
            "max(if(data_version > max_block_number, data_version, 0)) AS version "
            "FROM system.parts WHERE database = {db:String} AND table = 'steps_data' AND active "
            "GROUP BY partition_id ORDER BY partition_id",
            {"db": self.location.database})
        columns = (rows.column(name).to_pylist() for name in ("partition_id", "block", "version"))
        return [f"{_partition_start(p)}:{b}.{v}" for p, b, v in zip(*columns, strict=True)]

    def generation(self) -> int:
        """A number that changes whenever the stored rows may have changed."""
        digest = hashlib.blake2b("\n".join(self.partitions()).encode(), digest_size=7).digest()
        return int.from_bytes(digest, "big")

    def first_start_ns(self) -> int | None:
        rows = self.client.query_arrow(
            f"SELECT min(start_time_ns) AS first FROM {self._table('steps_data')}")
        return rows.column("first")[0].as_py() if rows.num_rows else None


def _partition_start(partition_id: str) -> str:
    """`20261115` as `2026-11-15`, `2026111507` as `2026-11-15T07`."""
    day = f"{partition_id[:4]}-{partition_id[4:6]}-{partition_id[6:8]}"
    return f"{day}T{partition_id[8:10]}" if len(partition_id) == 10 else day


def partition_condition(start: str, column: str = "s.start_time") -> str:
    """A ClickHouse condition selecting one partition's rows, given its start."""
    if "T" in start:
        return f"toStartOfHour({column}) = toDateTime('{start.replace('T', ' ')}:00:00', 'UTC')"
    return f"toDate({column}) = toDate('{start}')"


def _first_of_each_key(table: pa.Table, spec: Dataset) -> pa.Table:
    """Rows with a key seen earlier in the batch dropped, as the embedded store does."""
    keys = list(spec.key_columns)
    numbered = table.select(keys).append_column("_row", pa.array(np.arange(table.num_rows)))
    first = numbered.group_by(keys, use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    return table.take(pa.array(np.sort(first.column("_row_min").to_numpy())))


def _dedup_token(table: pa.Table, spec: Dataset) -> str:
    """The batch's identity for ClickHouse's insert deduplication: a digest of its keys."""
    digest = hashlib.sha256()
    for name in spec.key_columns:
        column = table.column(name).combine_chunks()
        for buffer in column.buffers():
            if buffer is not None:
                digest.update(buffer)
    return digest.hexdigest()
