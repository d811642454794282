"""Small stores with hand-chosen steps, for tests whose expected values are worked by hand.

Each helper returns one row of the steps table as a dict; `make_store` writes the rows
through `Store.append_steps`, the same door ingest uses. Trace and span names are
readable in the tests (`"t1"`, `"llm-a"`) and hashed into the hex ids the store expects.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from steps_factory import arrow_schema

from stepscope.schema import STEP_COLUMNS
from stepscope.store import Store

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # a Tuesday of ISO week 2026-W47
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tid(name: str) -> str:
    return hashlib.md5(f"trace:{name}".encode()).hexdigest()


def sid(trace: str, name: str) -> str:
    return hashlib.md5(f"span:{trace}:{name}".encode()).hexdigest()[:16]


def _row(trace: str, name: str, *, parent: str | None, start: datetime, duration_ms: float,
         **columns: Any) -> dict[str, Any]:
    start_ns = (start - EPOCH) // timedelta(microseconds=1) * 1_000
    row: dict[str, Any] = {
        "trace_id": tid(trace),
        "span_id": sid(trace, name),
        "parent_span_id": sid(trace, parent) if parent else None,
        "is_root": parent is None,
        "start_time_ns": start_ns,
        "end_time_ns": start_ns + round(duration_ms * 1_000_000),
        "start_time": start.astimezone(UTC).replace(tzinfo=None),
        "duration_ms": float(duration_ms),
        "name": name,
        "span_kind": "internal",
        "status_code": "unset",
        "service_name": "support-agent",
        "service_version": "1.0.0",
        "environment": "production",
        "attributes": [],
        "resource_attributes": [],
        "source_file": "test",
        "source_batch": 0,
        "ingested_at": datetime(2026, 11, 30),
    }
    row.update(columns)
    return row


def root(trace: str, workflow: str, outcome: str | None = "completed", *,
         start: datetime = T0, duration_ms: float = 10_000, **columns: Any) -> dict[str, Any]:
    """The run itself: workflow, outcome and tenant live on this row only."""
    return _row(trace, "root", parent=None, start=start, duration_ms=duration_ms,
                step_kind="workflow", workflow=workflow, outcome=outcome,
                outcome_source="attribute" if outcome else None, **columns)


def llm(trace: str, name: str, model: str | None = "gpt-4o", *, provider: str | None = "openai",
        input_tokens: int | None = 1000, output_tokens: int | None = 100,
        cached_input_tokens: int | None = None, start: datetime = T0,
        duration_ms: float = 1000, status: str = "unset", kind: str = "llm",
        **columns: Any) -> dict[str, Any]:
    """A model call under the root span of `trace`."""
    return _row(trace, name, parent="root", start=start + timedelta(milliseconds=1),
                duration_ms=duration_ms, step_kind=kind, span_kind="client",
                request_model=model, provider=provider, input_tokens=input_tokens,
                output_tokens=output_tokens, cached_input_tokens=cached_input_tokens,
                status_code=status, **columns)


def tool(trace: str, name: str, tool_name: str = "lookup_order", *, status: str = "unset",
         start: datetime = T0, duration_ms: float = 200, **columns: Any) -> dict[str, Any]:
    return _row(trace, name, parent="root", start=start + timedelta(milliseconds=2),
                duration_ms=duration_ms, step_kind="tool", tool_name=tool_name,
                status_code=status, **columns)


def steps_table(rows: list[dict[str, Any]]) -> pa.Table:
    data = {c.name: [row.get(c.name) for row in rows] for c in STEP_COLUMNS}
    return pa.table(data, schema=arrow_schema())


def make_store(path: Path, rows: list[dict[str, Any]]) -> Store:
    store = Store.open(path, create=True)
    store.append_steps(steps_table(rows))
    return store
