"""Rendering query results as `table`, `json` or `csv`, the same way for every command.

JSON is a list of objects (a summary is one object), timestamps are ISO-8601 UTC with a
`Z`, and NaN or infinity become null, so that `jq` and spreadsheets never meet a value
that standard JSON cannot hold.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from stepscope.timeparse import iso_utc

FORMATS = ("table", "json", "csv")


def to_records(data: pl.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(data, pl.DataFrame):
        return data.to_dicts()
    return [dict(row) for row in data]


def json_value(value: Any) -> Any:
    """Make one value JSON-safe under the output conventions."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return json_value(float(value))
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return [json_value(v) for v in value]
    return str(value)


def render_json(data: Any) -> str:
    if isinstance(data, pl.DataFrame):
        data = to_records(data)
    return json.dumps(json_value(data), indent=2, ensure_ascii=False, allow_nan=False)


def _cell(value: Any) -> str:
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else f"{value:.0f}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if not records:
        return ""
    writer = csv.DictWriter(buffer, fieldnames=list(records[0].keys()), lineterminator="\n")
    writer.writeheader()
    for row in records:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def render_table(records: list[dict[str, Any]], max_width: int = 48) -> str:
    """A plain aligned text table; numbers right-aligned, long cells cut with an ellipsis."""
    if not records:
        return "(no rows)"
    headers = list(records[0].keys())
    cells = [[_cell(row.get(h)) for h in headers] for row in records]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(json_value(row.get(h)), int | float | type(None)) for row in records)
        for h in headers
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def render_summary_table(summary: Mapping[str, Any]) -> str:
    """One object as `key: value` lines, for summaries such as the ingest report."""
    width = max((len(k) for k in summary), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in summary.items())


def render(data: pl.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any], fmt: str) -> str:
    """Render a list of rows (or one summary object) in the requested format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if isinstance(data, Mapping):
        if fmt == "json":
            return render_json(dict(data))
        if fmt == "csv":
            return render_csv([dict(data)])
        return render_summary_table(data)
    records = to_records(data)
    if fmt == "json":
        return render_json(records)
    if fmt == "csv":
        return render_csv(records)
    return render_table(records)
