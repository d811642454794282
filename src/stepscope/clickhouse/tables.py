"""The ClickHouse layout of the store: the steps table built for the queries stepscope runs.

`steps_data` holds the normalised steps (the columns of `stepscope.schema`, as in the
Parquet store, plus `span_key`):

* `ENGINE = ReplacingMergeTree` with `ORDER BY (trace_id, span_id)`: a span stored twice
  (a retry, two collectors sending the same batch, a file ingested again) is one row
  after ClickHouse merges its parts, and the view `steps` reads `FINAL`, so queries never
  see the second copy even before the merge. Writers stay stateless: no lock, no
  coordination between `stepscope serve` processes. The sort key also makes a trace's
  steps adjacent, which is what the per-run tables aggregate over, and makes a trace
  lookup (the waterfall, the ingest's duplicate count) a primary-key range read.
* `PARTITION BY toDate(start_time)` (or by hour, `partition=hour`): a partition is the
  unit analytics refresh (a new batch re-reads only its days, stepscope.clickhouse.reader)
  and retention drops; a span's copies always land in the same partition, so the
  replacing merge always sees both.
* `non_replicated_deduplication_window`: an insert that carries the same deduplication
  token as a recent one (a worker retrying after a timeout) is dropped whole at the
  door, before it makes a part at all.
* `TTL ... DELETE` with `ttl_only_drop_parts`: with `retention_days`, whole days expire.

Low-cardinality text (kinds, models, services, workflows) is `LowCardinality`, maps are
`Map(String, String)`, timestamps `DateTime64(6, 'UTC')`. `content_events_data` and its
view follow the same pattern, and `stepscope_meta` records the schema version.
"""

from __future__ import annotations

from stepscope.schema import CONTENT_EVENT_COLUMNS, STEP_COLUMNS, Column

META_TABLE = "stepscope_meta"
# ClickHouse compresses with LZ4 by default; zstd keeps the text of prompts, completions
# and attribute maps at about half the size for little CPU.
TEXT_CODEC = "CODEC(ZSTD(1))"
DEDUP_WINDOW = 10_000
# Columns with few distinct values: dictionary-encoded by ClickHouse.
LOW_CARDINALITY = frozenset({
    "span_kind", "step_kind", "operation", "status_code", "service_name", "service_version",
    "environment", "scope_name", "scope_version", "request_model", "response_model",
    "provider", "finish_reason", "tool_name", "agent_name", "prompt_name", "prompt_version",
    "workflow", "outcome", "outcome_source", "tenant_id", "source_file", "event_name", "role",
})
# Columns every row has (sort and partition keys cannot be Nullable).
NOT_NULL = frozenset({"trace_id", "span_id", "start_time_ns", "start_time", "time_ns"})
_TYPES = {
    "VARCHAR": "String",
    "BOOLEAN": "Bool",
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "DOUBLE": "Float64",
    "TIMESTAMP": "DateTime64(6, 'UTC')",
}


def column_type(column: Column) -> str:
    """The column's ClickHouse type, with zstd for text and maps (prompts, completions,
    attributes: most of a step's bytes)."""
    if column.sql_type.startswith("MAP("):
        return f"Map(String, String) {TEXT_CODEC}"
    base = _TYPES[column.sql_type]
    typed = base if column.name in NOT_NULL else f"Nullable({base})"
    if column.name in LOW_CARDINALITY:
        return f"LowCardinality({typed})"
    return f"{typed} {TEXT_CODEC}" if base == "String" else typed


def _columns_sql(columns: tuple[Column, ...]) -> str:
    return ",\n    ".join(f"{c.name} {column_type(c)}" for c in columns)


def _ttl(day: str, retention_days: int | None) -> str:
    return f"TTL {day} + INTERVAL {int(retention_days)} DAY DELETE\n" if retention_days else ""


# How the steps table is partitioned: by day, or by hour for a billion spans a day (so
# that refreshing the analytics during live ingest re-reads an hour, not a whole day).
# A partition's id is then YYYYMMDD or YYYYMMDDHH.
PARTITION_KEYS = {
    "day": "toDate(start_time)",
    "hour": "toYYYYMMDD(start_time) * 100 + toHour(start_time)",
}


def steps_ddl(database: str, retention_days: int | None = None, partition: str = "day") -> list[str]:
    names = ", ".join(c.name for c in STEP_COLUMNS)
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.steps_data (
    {_columns_sql(STEP_COLUMNS)},
    span_key UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY {PARTITION_KEYS[partition]}
ORDER BY (trace_id, span_id)
{_ttl("toDate(start_time)", retention_days)}\
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}, ttl_only_drop_parts = 1""",
        f"CREATE VIEW IF NOT EXISTS {database}.steps AS SELECT {names} FROM {database}.steps_data FINAL",
    ]


def content_events_ddl(database: str, retention_days: int | None = None) -> list[str]:
    names = ", ".join(c.name for c in CONTENT_EVENT_COLUMNS)
    day = "toDate(fromUnixTimestamp64Nano(time_ns))"
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.content_events_data (
    {_columns_sql(CONTENT_EVENT_COLUMNS)},
    span_key UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY {day}
ORDER BY (trace_id, span_id, event_name, time_ns)
{_ttl(day, retention_days)}\
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}, allow_nullable_key = 1, \
ttl_only_drop_parts = 1""",
        f"CREATE VIEW IF NOT EXISTS {database}.content_events AS "
        f"SELECT {names} FROM {database}.content_events_data FINAL",
    ]


def meta_ddl(database: str) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS {database}.{META_TABLE} (
    key String,
    value String,
    written_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY key"""]
