"""Reading the store whole: a description of it, and exports of the normalised steps.

These are plain scans of the steps table (no analytics), so they live beside the store.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stepscope.clickhouse.reader import duckdb_types
from stepscope.clickhouse.store import partition_condition
from stepscope.schema import STEP_COLUMN_NAMES, STEP_COLUMNS, arrow_schema
from stepscope.store import _sql_path
from stepscope.stores import AnyStore
from stepscope.timeparse import iso_utc

if TYPE_CHECKING:
    from stepscope.clickhouse.store import ClickHouseStore


def describe(store: AnyStore) -> dict[str, Any]:
    if store.dialect == "clickhouse":
        return _describe_clickhouse(store)
    manifest = store.manifest()
    with store.connect() as con:
        first, last, traces = con.execute(
            "SELECT min(start_time), max(start_time), count(DISTINCT trace_id) FROM steps"
        ).fetchone()
    return {
        "path": str(store.path),
        "schema_version": store.schema_version,
        "segments": len(manifest["segments"]),
        "steps": store.row_count(),
        "traces": traces,
        "first_step": iso_utc(first) if first else None,
        "last_step": iso_utc(last) if last else None,
    }


def _describe_clickhouse(store: ClickHouseStore) -> dict[str, Any]:
    table = store.client.query_arrow(
        f"SELECT min(start_time) AS first, max(start_time) AS last, "
        f"uniqExact(trace_id) AS traces FROM {store.location.database}.steps")
    first, last, traces = (table.column(i)[0].as_py() for i in range(3))
    return {
        "path": store.location.display,
        "schema_version": store.schema_version,
        "segments": len(store.partitions()),
        "steps": store.row_count(),
        "traces": traces,
        "first_step": iso_utc(first) if first and traces else None,
        "last_step": iso_utc(last) if last and traces else None,
    }


# Columns that do not fit a CSV cell are written as JSON text.
_CSV_EXPR = {
    "attributes": "to_json(attributes)::VARCHAR AS attributes",
    "resource_attributes": "to_json(resource_attributes)::VARCHAR AS resource_attributes",
}


def export_steps(store: AnyStore, out: str | None, fmt: str, since: datetime | None,
                 until: datetime | None, workflows: list[str]) -> int:
    """Export steps of the runs in range; a run's steps go together, whatever their times."""
    if store.dialect == "clickhouse":
        return _export_clickhouse(store, out, fmt, since, until, workflows)

    where, params = ["TRUE"], []
    if since is not None:
        where.append("s.start_time >= ?")
        params.append(since.replace(tzinfo=None))
    if until is not None:
        where.append("s.start_time < ?")
        params.append(until.replace(tzinfo=None))
    if workflows:
        where.append(
            "s.trace_id IN (SELECT trace_id FROM steps WHERE is_root AND workflow IN "
            f"({', '.join('?' for _ in workflows)}))"
        )
        params.extend(workflows)
    cols = [
        (_CSV_EXPR.get(c, f"s.{c}") if fmt == "csv" else f"s.{c}") for c in STEP_COLUMN_NAMES
    ]
    query = (
        f"SELECT {', '.join(cols)} FROM steps s WHERE {' AND '.join(where)} "
        "ORDER BY s.start_time_ns, s.trace_id, s.span_id"
    )
    with store.connect() as con:
        count = con.execute(f"SELECT count(*) FROM ({query})", params).fetchall()[0][0]
        if out:
            options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
            con.execute(f"COPY ({query}) TO '{_sql_path(out)}' ({options})", params)
        else:
            reader = con.con.sql(query, params=params).to_arrow_reader(65_536)
            with pacsv.CSVWriter(sys.stdout.buffer, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            sys.stdout.buffer.flush()
    return int(count)


def _export_clickhouse(store: ClickHouseStore, out: str | None, fmt: str, since: datetime | None,
                       until: datetime | None, workflows: list[str]) -> int:
    """The same export from a ClickHouse store, a partition at a time (bounded memory)."""
    database = store.location.database
    where, params = ["TRUE"], {}
    if since is not None:
        where.append("s.start_time >= {since:DateTime64(6, 'UTC')}")
        params["since"] = _utc_text(since)
    if until is not None:
        where.append("s.start_time < {until:DateTime64(6, 'UTC')}")
        params["until"] = _utc_text(until)
    if workflows:
        where.append(f"s.trace_id IN (SELECT trace_id FROM {database}.steps WHERE is_root AND "
                     "workflow IN {workflows:Array(String)})")
        params["workflows"] = list(workflows)
    columns = [
        f"toJSONString(s.{c}) AS {c}" if fmt == "csv" and c in _CSV_EXPR else f"s.{c}"
        for c in STEP_COLUMN_NAMES
    ]
    rows, writer = 0, None
    sink = out if out else sys.stdout.buffer
    try:
        for start in (p.split(":", 1)[0] for p in store.partitions()):
            query = (f"SELECT {', '.join(columns)} FROM {database}.steps s "
                     f"WHERE {partition_condition(start)} AND {' AND '.join(where)} "
                     "ORDER BY s.start_time_ns, s.trace_id, s.span_id")
            table = duckdb_types(store.client.query_arrow(query, params))
            table = table.cast(_export_schema(table.schema, fmt))
            if writer is None:
                writer = (pq.ParquetWriter(sink, table.schema, compression="zstd") if fmt == "parquet"
                          else pacsv.CSVWriter(sink, table.schema))
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None and fmt == "csv":      # no rows: still a header
        pacsv.CSVWriter(sink, _export_schema(arrow_schema(STEP_COLUMNS), fmt)).close()
    if not out:
        sys.stdout.buffer.flush()
    return rows


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _export_schema(schema: pa.Schema, fmt: str) -> pa.Schema:
    """The steps' own column types (the CSV's JSON columns as text)."""
    fields = []
    for column in STEP_COLUMNS:
        if fmt == "csv" and column.name in _CSV_EXPR:
            fields.append(pa.field(column.name, pa.string()))
        else:
            fields.append(arrow_schema((column,)).field(0))
    return pa.schema(fields)
