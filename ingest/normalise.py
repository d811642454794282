"""Raw spans in, normalised steps out: every convention mapped in one DuckDB query.

`normalise(con, raw, config)` is the whole contract. It takes a batch shaped like
`raw_schema.RAW_SPAN_SCHEMA` and returns an Arrow table with exactly the columns and types
of `stepscope.schema.STEP_COLUMNS`, one row per span, in the input order, with the
privacy policy already applied. It never loops over spans in Python: the query (generated
by `normalise_sql` from `conventions`) does the mapping column-wise, in parallel.

The attribute maps are assembled from the query's key and value lists by wrapping them as
an Arrow map without copying. DuckDB's own MAP constructor validates every entry one at a
time (about half a microsecond each, i.e. ~1.4 s per 200,000 spans of 15 attributes);
uniqueness is instead guaranteed up front (a batch with a repeated or null key gets a
deduplicating filter in the query).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from stepscope.ingest import privacy
from stepscope.ingest.normalise_sql import BatchShape, Builder
from stepscope.ingest.raw_schema import RAW_SPAN_SCHEMA

from stepscope.config import Config
from stepscope.schema import STEP_COLUMNS

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}
STEP_ARROW_SCHEMA = pa.schema([pa.field(c.name, _ARROW_TYPES[c.sql_type]) for c in STEP_COLUMNS])

# DuckDB scans an Arrow table in parallel by record batch: split big batches so both
# cores work (slicing is zero-copy).
SCAN_CHUNK_ROWS = 16_384


def normalise(con: duckdb.DuckDBPyConnection, raw: pa.Table, config: Config,
              *, ingested_at: datetime | None = None) -> pa.Table:
    """Map a raw spans batch onto the steps schema, privacy policy applied.

    `con` is a scratch in-memory connection; the batch is registered on it under a unique
    name for the duration of the call and the redaction macros are (re)defined on it.
    `ingested_at` defaults to now (UTC).
    """
    missing = [f.name for f in RAW_SPAN_SCHEMA if f.name not in raw.column_names]
    if missing:
        raise ValueError(f"raw spans table lacks column(s) {', '.join(missing)}")
    if raw.num_rows == 0:
        return STEP_ARROW_SCHEMA.empty_table()
    mode = config.privacy.content
    privacy.install(con, mode)
    shape = batch_shape(raw)
    stamp = (ingested_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    query = Builder(config, shape, mode).query("__raw", stamp.isoformat(sep=" "))
    name = f"stepscope_raw_{uuid.uuid4().hex}"
    con.register(name, _rechunk(raw))
    try:
        result = con.sql(query.replace("__raw", name)).to_arrow_table()
    finally:
        con.unregister(name)
    return _assemble(result, raw)


def normalise_sql(raw: pa.Table, config: Config) -> str:
    """The query `normalise` would run on this batch (for debugging and docs)."""
    return Builder(config, batch_shape(raw), config.privacy.content).query(
        "raw", "1970-01-01 00:00:00")


def batch_shape(raw: pa.Table) -> BatchShape:
    """The keys present in the batch and whether any span repeats a key."""
    return BatchShape(
        attr_keys=_distinct(raw.column("attr_keys")),
        resource_keys=_distinct(raw.column("resource_keys")),
        event_keys=_distinct(raw.column("event_attr_keys")),
        bad_attr_keys=_has_bad_keys(raw.column("attr_keys")),
        bad_resource_keys=_has_bad_keys(raw.column("resource_keys")),
    )


def _distinct(column: pa.ChunkedArray) -> frozenset[str]:
    flat = pc.list_flatten(column)
    return frozenset(v for v in pc.unique(flat).to_pylist() if v is not None)


def _has_bad_keys(column: pa.ChunkedArray) -> bool:
    """Some span lists a key twice, or a null key (either would break its map)."""
    if column.null_count == len(column) or len(column) == 0:
        return False
    if pc.any(pc.is_null(pc.list_flatten(column))).as_py():
        return True
    lists = pl.from_arrow(column)
    return bool((lists.list.n_unique() != lists.list.len()).any())


def _rechunk(raw: pa.Table) -> pa.Table:
    if raw.num_rows <= SCAN_CHUNK_ROWS:
        return raw
    return pa.Table.from_batches(raw.to_batches(max_chunksize=SCAN_CHUNK_ROWS), raw.schema)


def _map_column(keys: pa.ChunkedArray, values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Wrap parallel list columns (same length per row) as one map column."""
    keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    offsets = keys.offsets
    if offsets[0].as_py() != 0:
        offsets = pc.subtract(offsets, offsets[0])
    flat_keys, flat_values = pc.list_flatten(keys), pc.list_flatten(values)
    if len(flat_keys) != len(flat_values):
        raise AssertionError("attribute key and value lists differ in length")
    return pa.chunked_array([pa.MapArray.from_arrays(offsets, flat_keys, flat_values)],
                            type=pa.map_(pa.string(), pa.string()))


def _attribute_map(result: pa.Table, raw: pa.Table, prefix: str, raw_keys: str,
                   raw_values: str) -> pa.ChunkedArray:
    """The map for one attribute set: redacted lists where the query returned them, the
    raw lists elsewhere (the query returns keys/values only when it filtered them)."""
    if f"_{prefix}k" in result.column_names:
        keys, base = result.column(f"_{prefix}k"), result.column(f"_{prefix}v0")
    else:
        keys, base = raw.column(raw_keys), raw.column(raw_values)
        empty = pa.scalar([], type=pa.list_(pa.string()))
        keys, base = pc.fill_null(keys, empty), pc.fill_null(base, empty)
    redacted = result.column(f"_{prefix}vr")
    if redacted.null_count < len(redacted):
        base = pc.if_else(pc.is_null(redacted), base, redacted)
    return _map_column(keys, base)


def _assemble(result: pa.Table, raw: pa.Table) -> pa.Table:
    columns = []
    for field in STEP_ARROW_SCHEMA:
        if field.name == "attributes":
            columns.append(_attribute_map(result, raw, "", "attr_keys", "attr_values"))
        elif field.name == "resource_attributes":
            columns.append(_attribute_map(result, raw, "r", "resource_keys", "resource_values"))
        else:
            columns.append(result.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=STEP_ARROW_SCHEMA)
