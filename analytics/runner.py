"""The one place analytics SQL is loaded, assembled and executed.

Queries live in `sql/*.sql`, one file per query, written in plain SQL that DuckDB runs
and that stepscope.analytics.dialect translates for a ClickHouse store: `CASE WHEN`
rather than `FILTER`, integer nanosecond arithmetic rather than interval functions,
`$name` parameters. A query
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

CLICKHOUSE = "clickhouse"

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


def native(con: ReadConnection, sql: str, params: dict[str, Any] | None = None
           ) -> tuple[str, dict[str, Any] | None]:
    """The query and its parameters as the connection's engine takes them.

    DuckDB runs the text as written; a ClickHouse store's connection gets it translated
    (stepscope.analytics.dialect), parameters typed by their values.
    """
    if con.dialect == CLICKHOUSE:
        from stepscope.analytics import dialect  # SQLGlot: only with the ClickHouse extra

        return dialect.bind(dialect.translate(sql), params)
    return sql, _used_params(sql, params)


def query(con: ReadConnection, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """Rows of a query text (already assembled); timestamps come back as UTC-aware."""
    frame = pl.from_arrow(con.query_arrow(*native(con, sql, params)))
    assert isinstance(frame, pl.DataFrame)
    return utc_aware(frame)


def run(con: ReadConnection, name: str, params: dict[str, Any] | None = None,
        **parts: str) -> pl.DataFrame:
    """Execute query `name` and return its rows; timestamps come back as UTC-aware."""
    return query(con, render_sql(name, **parts), params)


def scalar(con: ReadConnection, name: str, params: dict[str, Any] | None = None,
           **parts: str) -> Any:
    table = con.query_arrow(*native(con, render_sql(name, **parts), params))
    return table.column(0)[0].as_py() if table.num_rows else None


def materialise(con: ReadConnection, table: str, name: str,
                params: dict[str, Any] | None = None, **parts: str) -> None:
    """Store the rows of query `name` as a temporary table of the connection."""
    con.create_temp_table(table, *native(con, render_sql(name, **parts), params))


def insert(con: ReadConnection, table: str, sql: str) -> None:
    """Append the rows of a query text to a temporary table of the connection."""
    con.insert_into(table, *native(con, sql))


def delete(con: ReadConnection, table: str, condition: str) -> None:
    """Delete the rows of a temporary table that meet a condition (no parameters)."""
    if con.dialect == CLICKHOUSE:
        from stepscope.analytics import dialect

        condition = dialect.translate_condition(condition)
    con.delete_where(table, condition)


def register(con: ReadConnection, table: str, data: pa.Table) -> None:
    """Make an Arrow table (e.g. the price table) queryable as `table`."""
    con.register_arrow(table, data)


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
