"""A read connection to a ClickHouse store, with the interface the analytics use.

`stepscope.analytics` speaks to any store through the same few calls (those of
`stepscope.store.ReadConnection`): query to Arrow, temporary tables, segments to build
the per-run tables from. Here:

* a connection is one ClickHouse session, so the run tables are session temporary
  tables (`ENGINE = Memory`), private to it, as DuckDB's are to its connection;
* the store's segments are its partitions (days, or hours), each identified by its
  highest block number and latest mutation: an insert into a day changes its identity,
  a background merge (which only rewrites parts) does not, so the analytics re-read
  exactly the partitions that received data, at most every `refresh_seconds`;
* results come back with DuckDB's types (signed integers, UTC timestamps without a
  zone), so the analytics above them never ask which engine answered.

Queries arrive already in ClickHouse's dialect (stepscope.analytics.runner translates).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from stepscope.clickhouse.client import Client, connect

if TYPE_CHECKING:
    from stepscope.clickhouse.store import ClickHouseStore

# The run tables live on disk, compressed, rather than in memory: they hold a few rows
# per run, so a reader of a large store would otherwise need gigabytes of memory per
# million runs (measured: 2.5 KB a run in Memory tables, 0.75 KB as MergeTree parts).
TEMP_ENGINE = "ENGINE = MergeTree ORDER BY tuple()"
_READS_A_TABLE = re.compile(r"\bSELECT\b", re.IGNORECASE)
_ARROW_TO_CLICKHOUSE = {
    pa.string(): "String", pa.large_string(): "String", pa.int64(): "Int64", pa.int32(): "Int32",
    pa.float64(): "Float64", pa.bool_(): "Bool", pa.timestamp("us"): "DateTime64(6, 'UTC')",
    pa.date32(): "Date",
}


class ClickHouseReadConnection:
    """One ClickHouse session over a store, for analytics."""

    dialect = "clickhouse"

    def __init__(self, store: ClickHouseStore):
        self.store = store
        self.client: Client = connect(store.location, database=store.location.database)
        self._segments: tuple[str, ...] | None = None
        self._checked_at = -math.inf
        self.refresh()

    # -- what the store holds -----------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the store's partitions; returns True when they changed.

        With the location's `refresh_seconds`, at most that often: until then the
        connection keeps answering from the data it has.
        """
        now = time.monotonic()
        if now - self._checked_at < self.store.location.refresh_seconds:
            return False
        self._checked_at = now
        segments = tuple(self.store.partitions(self.client))
        if segments == self._segments:
            return False
        self._segments = segments
        return True

    def segments(self) -> list[str]:
        return list(self._segments or ())

    # -- queries ------------------------------------------------------------------------

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return duckdb_types(self.client.query_arrow(sql, params))

    def create_temp_table(self, table: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.client.command(f"CREATE OR REPLACE TEMPORARY TABLE {table} {TEMP_ENGINE} AS {sql}",
                            params)

    def insert_into(self, table: str, sql: str, params: dict[str, Any] | None = None) -> None:
        self.client.command(f"INSERT INTO {table} {sql}", params)

    def delete_where(self, table: str, condition: str) -> None:
        """Delete rows of a run table: as a mutation when the condition stands alone; by
        keeping the other rows when it reads another table (a mutation runs outside the
        session and cannot see its temporary tables)."""
        if not _READS_A_TABLE.search(condition):
            self.client.command(f"ALTER TABLE {table} DELETE WHERE {condition} "
                                "SETTINGS mutations_sync = 2")
            return
        kept = f"{table}__kept"
        self.client.command(f"CREATE OR REPLACE TEMPORARY TABLE {kept} {TEMP_ENGINE} AS "
                            f"SELECT * FROM {table} WHERE NOT ifNull(({condition}), false)")
        self.client.command(f"CREATE OR REPLACE TEMPORARY TABLE {table} {TEMP_ENGINE} AS "
                            f"SELECT * FROM {kept}")
        self.client.command(f"DROP TEMPORARY TABLE {kept}")

    def drop_table(self, table: str) -> None:
        self.client.command(f"DROP TEMPORARY TABLE IF EXISTS {table}")

    def register_arrow(self, table: str, data: pa.Table) -> None:
        """A temporary table holding an Arrow table (e.g. the price table)."""
        columns = ", ".join(f"`{f.name}` {_nullable(f.type)}" for f in data.schema)
        self.client.command(f"DROP TEMPORARY TABLE IF EXISTS {table}")
        self.client.command(f"CREATE TEMPORARY TABLE {table} ({columns}) {TEMP_ENGINE}")
        if data.num_rows:
            self.client.insert_arrow(table, data)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Temporary tables need no transaction: each statement stands alone."""
        yield

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ClickHouseReadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nullable(arrow_type: pa.DataType) -> str:
    try:
        return f"Nullable({_ARROW_TO_CLICKHOUSE[arrow_type]})"
    except KeyError:
        raise TypeError(f"no ClickHouse column type for Arrow {arrow_type}") from None


def duckdb_types(table: pa.Table) -> pa.Table:
    """ClickHouse's result types as DuckDB gives them: signed 64-bit integers for its
    unsigned counts, UTC timestamps in microseconds without a zone, plain strings."""
    columns, changed = [], False
    for column in table.columns:
        target = _duckdb_type(column.type)
        if target != column.type:
            column = _cast(column, target)
            changed = True
        columns.append(column)
    if not changed:
        return table
    return pa.table(columns, names=table.column_names)


def _duckdb_type(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_unsigned_integer(arrow_type) or arrow_type in (pa.int8(), pa.int16()):
        return pa.int64()
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("us")
    if pa.types.is_large_string(arrow_type) or pa.types.is_dictionary(arrow_type):
        return pa.string()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pa.list_(_duckdb_type(arrow_type.value_type))
    return arrow_type


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    # A zoned timestamp's values are UTC instants; dropping the zone keeps them as UTC.
    return column.cast(target)
