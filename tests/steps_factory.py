"""Build rows of the steps table directly, for tests of the store itself.

Tests of ingest and analytics go through real OTLP payloads; the store's own tests
(concurrency, migration, retention) only need well-formed rows in quantity.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pyarrow as pa

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


def arrow_schema(columns=STEP_COLUMNS) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.sql_type]) for c in columns])


def make_runs(n_runs: int, *, start: datetime | None = None, steps_per_run: int = 3,
              workflow: str = "ticket_triage", columns=STEP_COLUMNS,
              spacing_s: float = 60.0) -> pa.Table:
    """`n_runs` traces, each a root span plus `steps_per_run - 1` llm children."""
    start = start or datetime(2026, 11, 10, tzinfo=UTC)
    base_ns = int(start.timestamp() * 1e9)
    rows: dict[str, list] = {c.name: [] for c in columns}
    for r in range(n_runs):
        trace_id = secrets.token_hex(16)
        root_id = secrets.token_hex(8)
        t0 = base_ns + int(r * spacing_s * 1e9)
        for s in range(steps_per_run):
            is_root = s == 0
            span_start = t0 + s * 1_000_000
            span_end = span_start + (5_000_000_000 if is_root else 1_000_000_000)
            values = {
                "trace_id": trace_id,
                "span_id": root_id if is_root else secrets.token_hex(8),
                "parent_span_id": None if is_root else root_id,
                "is_root": is_root,
                "start_time_ns": span_start,
                "end_time_ns": span_end,
                "start_time": datetime.fromtimestamp(span_start / 1e9, UTC).replace(tzinfo=None),
                "duration_ms": (span_end - span_start) / 1e6,
                "name": workflow if is_root else "chat gpt-4o-mini",
                "span_kind": "internal" if is_root else "client",
                "step_kind": "workflow" if is_root else "llm",
                "status_code": "unset",
                "service_name": "support-agent",
                "service_version": "1.0.0",
                "request_model": None if is_root else "gpt-4o-mini",
                "provider": None if is_root else "openai",
                "input_tokens": None if is_root else 100,
                "output_tokens": None if is_root else 20,
                "workflow": workflow if is_root else None,
                "outcome": "completed" if is_root else None,
                "outcome_source": "attribute" if is_root else None,
                "attributes": [],
                "resource_attributes": [("service.name", "support-agent")],
                "source_file": "test",
                "source_batch": 0,
                "ingested_at": datetime(2026, 11, 20),
            }
            for c in columns:
                rows[c.name].append(values.get(c.name))
    return pa.table(rows, schema=arrow_schema(columns))
