"""Reading the store whole: a description of it, and exports of the normalised steps.

These are plain scans of the steps table (no analytics), so they live beside the store.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from stepscope.store import Store, _sql_path
from stepscope.timeparse import iso_utc


def describe(store: Store) -> dict[str, Any]:
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


# Columns that do not fit a CSV cell are written as JSON text.
_CSV_EXPR = {
    "attributes": "to_json(attributes)::VARCHAR AS attributes",
    "resource_attributes": "to_json(resource_attributes)::VARCHAR AS resource_attributes",
}


def export_steps(store: Store, out: str | None, fmt: str, since: datetime | None,
                 until: datetime | None, workflows: list[str]) -> int:
    """Export steps of the runs in range; a run's steps go together, whatever their times."""
    from stepscope.schema import STEP_COLUMN_NAMES

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
        count = con.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0]
        if out:
            options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
            con.execute(f"COPY ({query}) TO '{_sql_path(out)}' ({options})", params)
        else:
            reader = con.execute(query, params).to_arrow_reader(65_536)
            import pyarrow.csv as pacsv

            with pacsv.CSVWriter(sys.stdout.buffer, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            sys.stdout.buffer.flush()
    return int(count)
