"""The one place analytics SQL is loaded, assembled and executed.

Queries live in `sql/*.sql`, one file per query, written in plain SQL that DuckDB runs
and that a ClickHouse backend can translate: `CASE WHEN` rather than `FILTER`, integer
nanosecond arithmetic rather than interval functions, `$name` parameters. A query
names the parts it leaves open as `{{part}}`: the caller fills them with SQL built from
the whitelists in `stepscope.analytics.filters` (never with user text — values always
travel as parameters), and a part nobody fills is the query file of that name, so
`{{priced_steps}}` inlines `sql/priced_steps.sql`.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

import polars as pl
import pyarrow as pa

from stepscope.store import ReadConnection

_PART = re.compile(r"\{\{(\w+)\}\}")


class QueryError(RuntimeError):
    """A query file or part is missing: a bug in stepscope, not in the user's input."""


@functools.cache
def load_sql(name: str) -> str:
    """The text of `sql/NAME.sql` (comments kept; DuckDB ignores them)."""
    try:
        return resources.files("stepscope.analytics").joinpath(f"sql/{name}.sql").read_text()
    except FileNotFoundError:
        raise QueryError(f"no query file sql/{name}.sql") from None


def render_sql(name: str, **parts: str) -> str:
    """Query `name` with its `{{part}}`s filled from `parts` or from other query files.

    A part given may itself name query files (`steps="{{priced_steps}}"`).
    """

    def fill(match: re.Match[str]) -> str:
        part = match.group(1)
        if part in parts:
            return _PART.sub(fill, parts[part])
        return "(" + render_sql(part, **parts) + ")"

    return _PART.sub(fill, load_sql(name))


def run(con: ReadConnection, name: str, params: dict[str, Any] | None = None,
        **parts: str) -> pl.DataFrame:
    """Execute query `name` and return its rows; timestamps come back as UTC-aware."""
    sql = render_sql(name, **parts)
    table = con.con.sql(sql, params=_used_params(sql, params)).to_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return utc_aware(frame)


def scalar(con: ReadConnection, name: str, params: dict[str, Any] | None = None,
           **parts: str) -> Any:
    sql = render_sql(name, **parts)
    rows = con.execute(sql, _used_params(sql, params)).fetchall()
    return rows[0][0] if rows else None


def materialise(con: ReadConnection, table: str, name: str,
                params: dict[str, Any] | None = None, **parts: str) -> None:
    """Store the rows of query `name` as a temporary table of the connection."""
    sql = render_sql(name, **parts)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", _used_params(sql, params))


def register(con: ReadConnection, table: str, data: pa.Table) -> None:
    """Make an Arrow table (e.g. the price table) queryable as `table`."""
    con.con.register(f"{table}_arrow", data)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
    con.con.unregister(f"{table}_arrow")


def _used_params(sql: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """DuckDB rejects named parameters a statement does not use; pass only those it does."""
    if not params:
        return None
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    return used or None


# Dollar amounts are sums of products of rates and token counts; rounding them to a
# billionth of a cent drops float noise (0.0135 rather than 0.013500000000000002).
USD_DECIMALS = 11


def utc_aware(frame: pl.DataFrame) -> pl.DataFrame:
    """Naive timestamps in the store are UTC: say so, so callers never guess. Integer
    sums (128-bit in DuckDB, decimals in Arrow) come back as 64-bit integers, and dollar
    columns (`*_usd`) without float noise."""
    fixes = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            fixes.append(pl.col(name).dt.replace_time_zone("UTC"))
        elif isinstance(dtype, pl.Decimal) and dtype.scale == 0:
            fixes.append(pl.col(name).cast(pl.Int64))
        elif dtype == pl.Float64 and name.endswith("_usd"):
            fixes.append(pl.col(name).round(USD_DECIMALS))
    return frame.with_columns(fixes) if fixes else frame
