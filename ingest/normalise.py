"""Raw spans in, normalised steps out: every convention mapped in one DuckDB query.

`normalise(con, raw, config)` is the whole contract. It takes a batch shaped like
`raw_schema.RAW_SPAN_SCHEMA` and returns an Arrow table with exactly the columns and types
of `stepscope.schema.STEP_COLUMNS`, one row per span, in the input order, with the
privacy policy already applied. It never loops over spans in Python: the query (generated
by `normalise_sql` from `conventions`) does the mapping column-wise, in parallel.

Work that is cheaper on whole arrays than in SQL is done on whole arrays: key positions
(`key_index`) before the query, and the attribute maps after it, which wrap the key and
(redacted) value lists as an Arrow map without copying. DuckDB's own MAP constructor
validates every entry one at a time (about half a microsecond each, ~1.4 s per 200,000
spans of 15 attributes); here uniqueness is checked once per batch, and a batch with a
repeated or null key has those entries filtered out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from stepscope.config import Config
from stepscope.ingest import privacy
from stepscope.ingest.key_index import KeyIndex, null_entries
from stepscope.ingest.normalise_sql import BatchShape, Builder
from stepscope.ingest.raw_schema import RAW_SPAN_SCHEMA
from stepscope.schema import STEP_COLUMNS, arrow_schema

STEP_ARROW_SCHEMA = arrow_schema(STEP_COLUMNS)

# DuckDB scans an Arrow table in parallel by record batch: split big batches so both
# cores work (slicing is zero-copy).
SCAN_CHUNK_ROWS = 16_384


def normalise(con: duckdb.DuckDBPyConnection, raw: pa.Table, config: Config,
              *, ingested_at: datetime | None = None) -> pa.Table:
    """Map a raw spans batch onto the steps schema, privacy policy applied.

    `con` is a scratch in-memory connection; the batch is registered on it under a unique
    name for the duration of the call. `ingested_at` defaults to now (UTC). Raises
    ValueError for a table that is not a raw spans table.
    """
    _check(raw)
    if raw.num_rows == 0:
        return STEP_ARROW_SCHEMA.empty_table()
    mode = config.privacy.content
    attr_keys = raw.column("attr_keys").combine_chunks()
    attr_values = raw.column("attr_values").combine_chunks()
    attrs, resources = KeyIndex.of(attr_keys), KeyIndex.of(raw.column("resource_keys"))
    shape = BatchShape(attrs.present(), resources.present(),
                       _distinct(raw.column("event_attr_keys")))
    builder = Builder(config, shape, mode)
    name = f"stepscope_raw_{uuid.uuid4().hex}"
    stamp = (ingested_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    query = builder.query(name, stamp.isoformat(sep=" "))

    content = set(builder.content_keys())
    if content:  # `drop`: content values never reach the query
        attr_values = null_entries(attr_values, attrs.entry_mask(keep=content.__contains__))
    table = raw.set_column(raw.schema.get_field_index("attr_values"), "attr_values", attr_values)
    # Privacy first, on whole columns: every lookup of the query reads redacted values.
    table = _redacted(table, mode)
    for slot, positions in enumerate(attrs.positions(list(builder.attr_slots))):
        table = table.append_column(f"_p{slot}", positions)
    for slot, positions in enumerate(resources.positions(list(builder.res_slots))):
        table = table.append_column(f"_q{slot}", positions)

    con.register(name, _rechunk(table))
    try:
        result = _run(con, query)
    finally:
        con.unregister(name)

    if not result.column("span_id").equals(raw.column("span_id")):
        raise ValueError("normalised rows came back out of order (preserve_insertion_order "
                         "must stay on for the scratch connection)")
    attributes = _attribute_map(attrs, attr_keys, table.column("attr_values"), drop=content)
    resource_map = _attribute_map(resources, raw.column("resource_keys").combine_chunks(),
                                  table.column("resource_values"))
    return _assemble(result, attributes, resource_map)


# The raw columns whose text the privacy policy applies to: lists of values, and texts.
_REDACTED_LISTS = ("attr_values", "resource_values", "event_attr_values")
_REDACTED_TEXTS = ("status_message", "exception_message")


def _redacted(table: pa.Table, mode: str) -> pa.Table:
    """The batch with the policy applied to every value it stores, in one pass.

    All the values (attribute lists flattened, messages as they are) are redacted as one
    column and cut back into their places, so the list offsets are kept unchanged.
    """
    lists = {name: table.column(name).combine_chunks() for name in _REDACTED_LISTS}
    pieces = [pc.list_flatten(lists[name]) for name in _REDACTED_LISTS]
    pieces += [table.column(name).combine_chunks() for name in _REDACTED_TEXTS]
    redacted = privacy.redact_array(pa.concat_arrays([p.cast(pa.string()) for p in pieces]), mode)
    at = 0
    for name in (*_REDACTED_LISTS, *_REDACTED_TEXTS):
        if name in lists:
            original = lists[name]
            count = len(pc.list_flatten(original))
            offsets = original.offsets
            if len(offsets) and offsets[0].as_py() != 0:
                offsets = pc.subtract(offsets, offsets[0])
            column = pa.ListArray.from_arrays(offsets, redacted.slice(at, count),
                                              mask=original.is_null())
        else:
            count = table.num_rows
            column = redacted.slice(at, count)
        at += count
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def normalise_sql(raw: pa.Table, config: Config) -> str:
    """The query `normalise` would run on this batch (for debugging and docs)."""
    shape = BatchShape(KeyIndex.of(raw.column("attr_keys")).present(),
                       KeyIndex.of(raw.column("resource_keys")).present(),
                       _distinct(raw.column("event_attr_keys")))
    return Builder(config, shape, config.privacy.content).query("raw", "1970-01-01 00:00:00")


def _run(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """Run the query to Arrow, streamed: a materialised result would hold every row twice."""
    return con.sql(query).to_arrow_table()


def _check(raw: pa.Table) -> None:
    missing = [f.name for f in RAW_SPAN_SCHEMA if f.name not in raw.column_names]
    if missing:
        raise ValueError(f"raw spans table lacks column(s) {', '.join(missing)}")
    for keys, values in (("attr_keys", "attr_values"), ("resource_keys", "resource_values"),
                         ("event_attr_keys", "event_attr_values")):
        same = pc.equal(pc.list_value_length(raw.column(keys)),
                        pc.list_value_length(raw.column(values)))
        if pc.any(pc.invert(pc.fill_null(same, True))).as_py():
            raise ValueError(f"raw spans table: {keys} and {values} differ in length")


def _distinct(column: pa.ChunkedArray) -> frozenset[str]:
    flat = pc.list_flatten(column)
    return frozenset(v for v in pc.unique(flat).to_pylist() if v is not None)


def _rechunk(raw: pa.Table) -> pa.Table:
    if raw.num_rows <= SCAN_CHUNK_ROWS:
        return raw
    return pa.Table.from_batches(raw.to_batches(max_chunksize=SCAN_CHUNK_ROWS))


def _attribute_map(index: KeyIndex, keys: pa.ListArray, values: pa.ChunkedArray | pa.Array,
                   drop: set[str] | frozenset[str] = frozenset()) -> pa.Array:
    """The map column from the keys and the values after the privacy policy; content
    keys (under `drop`) and repeated or null keys left out."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != keys.type:
        values = values.cast(keys.type)
    bad = index.has_bad_keys()
    if drop or bad:
        keep = (lambda key: key not in drop) if drop else None
        keys, values = index.filter_lists(keys, values, index.entry_mask(keep, first_only=bad))
    offsets = keys.offsets
    if offsets[0].as_py() != 0:
        offsets = pc.subtract(offsets, offsets[0])
    return pa.MapArray.from_arrays(offsets, pc.list_flatten(keys), pc.list_flatten(values))


def _assemble(result: pa.Table, attributes: pa.Array, resources: pa.Array) -> pa.Table:
    columns = []
    for field in STEP_ARROW_SCHEMA:
        if field.name == "attributes":
            columns.append(attributes)
        elif field.name == "resource_attributes":
            columns.append(resources)
        else:
            columns.append(result.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=STEP_ARROW_SCHEMA)
