"""The normalised steps table: one row per span, whatever convention emitted it.

This is the contract between ingest (which writes it) and analytics (which reads it).
Columns carry the schema version they appeared in, so that a store written by an older
stepscope is migrated by adding what it lacks (see `stepscope.store`), never misread.

Trace-level facts (workflow, outcome, tenant) are written on the root span's row only;
analytics resolve them per trace at query time, because the spans of one trace may
arrive in different files or batches and the root may come last.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 2

STEP_KINDS = (
    "agent", "workflow", "llm", "embedding", "tool", "retrieval", "guardrail", "evaluator", "other",
)
OUTCOMES = ("completed", "escalated", "failed", "unknown")
STATUS_CODES = ("unset", "ok", "error")


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    doc: str
    since: int = 1


STEP_COLUMNS: tuple[Column, ...] = (
    Column("trace_id", "VARCHAR", "32 lower-case hex characters"),
    Column("span_id", "VARCHAR", "16 lower-case hex characters"),
    Column("parent_span_id", "VARCHAR", "null on a root span"),
    Column("is_root", "BOOLEAN", "the span has no parent: it is the run itself"),
    Column("start_time_ns", "BIGINT", "start, nanoseconds since the Unix epoch (UTC)"),
    Column("end_time_ns", "BIGINT", "end, nanoseconds since the Unix epoch (UTC)"),
    Column("start_time", "TIMESTAMP", "start as a UTC timestamp (microseconds), for grouping"),
    Column("duration_ms", "DOUBLE", "end minus start in milliseconds"),
    Column("name", "VARCHAR", "span name"),
    Column("span_kind", "VARCHAR", "OTLP SpanKind: internal, server, client, producer, consumer"),
    Column("step_kind", "VARCHAR", "agent, workflow, llm, embedding, tool, retrieval, guardrail, "
           "evaluator or other (docs/steps.md says how each convention maps)"),
    Column("operation", "VARCHAR", "the raw operation/kind value the step kind came from"),
    Column("status_code", "VARCHAR", "unset, ok or error"),
    Column("status_message", "VARCHAR", "span status message"),
    Column("error_type", "VARCHAR", "error.type, else the exception event's type"),
    Column("error_message", "VARCHAR", "exception message, else the status message of a failure"),
    Column("http_status", "INTEGER", "HTTP response status code where the span has one"),
    Column("service_name", "VARCHAR", "resource service.name"),
    Column("service_version", "VARCHAR", "resource service.version"),
    Column("environment", "VARCHAR", "resource deployment.environment(.name)"),
    Column("scope_name", "VARCHAR", "instrumentation scope name"),
    Column("scope_version", "VARCHAR", "instrumentation scope version"),
    Column("request_model", "VARCHAR", "model asked for"),
    Column("response_model", "VARCHAR", "model that answered (may carry a dated version)"),
    Column("provider", "VARCHAR", "normalised provider name, e.g. openai, anthropic"),
    Column("input_tokens", "BIGINT", "input tokens, cached input included; model-call steps only"),
    Column("output_tokens", "BIGINT", "output tokens, reasoning included; model-call steps only"),
    Column("cached_input_tokens", "BIGINT", "input tokens read from the provider's cache"),
    Column("cache_write_tokens", "BIGINT", "input tokens written to the provider's cache"),
    Column("reasoning_tokens", "BIGINT", "reasoning tokens (part of output_tokens)", since=2),
    Column("ttft_ms", "DOUBLE", "time to first token of a streamed call", since=2),
    Column("finish_reason", "VARCHAR", "first finish reason: stop, length, tool_call, ..."),
    Column("reported_cost_usd", "DOUBLE", "cost the span reports itself (never used for totals)"),
    Column("tool_name", "VARCHAR", "tool called by a tool step"),
    Column("tool_call_id", "VARCHAR", "tool call id linking the model's request and the tool"),
    Column("agent_name", "VARCHAR", "agent that ran the step"),
    Column("prompt_name", "VARCHAR", "prompt template name", since=2),
    Column("prompt_version", "VARCHAR", "prompt template version", since=2),
    Column("workflow", "VARCHAR", "workflow name (root span; resolve per trace)"),
    Column("outcome", "VARCHAR", "completed, escalated, failed or unknown (root span only)"),
    Column("outcome_source", "VARCHAR", "attribute, status or null: where the outcome came from"),
    Column("tenant_id", "VARCHAR", "tenant (root span; resolve per trace)"),
    Column("session_id", "VARCHAR", "session / conversation id"),
    Column("user_id", "VARCHAR", "end user id"),
    Column("input_content", "VARCHAR", "prompt content after the privacy policy"),
    Column("output_content", "VARCHAR", "completion content after the privacy policy"),
    Column("attributes", "MAP(VARCHAR, VARCHAR)", "every span attribute as text, after redaction"),
    Column("resource_attributes", "MAP(VARCHAR, VARCHAR)", "every resource attribute as text"),
    Column("source_file", "VARCHAR", "file or endpoint the span came from"),
    Column("source_batch", "INTEGER", "request/record number within the source"),
    Column("ingested_at", "TIMESTAMP", "when stepscope stored the row (UTC)"),
)

STEP_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in STEP_COLUMNS)
KEY_COLUMNS = ("trace_id", "span_id")

CONTENT_EVENT_COLUMNS: tuple[Column, ...] = (
    Column("trace_id", "VARCHAR", "trace of the span the event belongs to"),
    Column("span_id", "VARCHAR", "span the event belongs to"),
    Column("time_ns", "BIGINT", "event time, nanoseconds since the Unix epoch (UTC)"),
    Column("event_name", "VARCHAR", "e.g. gen_ai.user.message, gen_ai.choice"),
    Column("role", "VARCHAR", "system, user, assistant or tool"),
    Column("content", "VARCHAR", "message text after the privacy policy"),
    Column("attributes", "MAP(VARCHAR, VARCHAR)", "every event attribute as text, after redaction"),
    Column("source_file", "VARCHAR", "file or endpoint the event came from"),
    Column("ingested_at", "TIMESTAMP", "when stepscope stored the row (UTC)"),
)


@dataclass(frozen=True)
class Dataset:
    """A table of the store: its columns, what makes a row unique, and its time column.

    `key_sql` computes a 64-bit key from the key columns; deduplication scans that one
    narrow column, then confirms candidates on the key columns themselves.
    """

    name: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    key_sql: str
    time_column: str


_SPAN_KEY_SQL = "xor(('0x' || substr(trace_id, 17, 16))::UBIGINT, ('0x' || span_id)::UBIGINT)"

DATASETS: dict[str, Dataset] = {
    "steps": Dataset("steps", STEP_COLUMNS, KEY_COLUMNS, _SPAN_KEY_SQL, "start_time_ns"),
    "content_events": Dataset(
        "content_events", CONTENT_EVENT_COLUMNS,
        ("trace_id", "span_id", "event_name", "time_ns"),
        f"xor({_SPAN_KEY_SQL}, time_ns::UBIGINT)",
        "time_ns",
    ),
}


# How each column type travels as Arrow: what DuckDB returns for it, what normalisation
# produces and what the store's Parquet segments hold.
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "BIGINT": pa.int64(),
    "UBIGINT": pa.uint64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    """The Arrow schema of a table with these columns."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.sql_type]) for c in columns])


def columns_at(version: int) -> tuple[Column, ...]:
    """The columns a store of the given schema version holds."""
    return tuple(c for c in STEP_COLUMNS if c.since <= version)


def create_table_sql(table: str = "steps", columns: tuple[Column, ...] = STEP_COLUMNS) -> str:
    body = ",\n    ".join(f"{c.name} {c.sql_type}" for c in columns)
    return f"CREATE TABLE {table} (\n    {body}\n)"
