"""analytics.dialect: each mapping gives on ClickHouse what the DuckDB text gives on DuckDB.

Every case runs the same DuckDB query on DuckDB and, translated, on ClickHouse (chdb),
over the same rows.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pytest
from clickhouse_support import assert_same_value

from stepscope.analytics import dialect
from stepscope.clickhouse.client import ChdbClient
from stepscope.clickhouse.location import parse_location
from stepscope.clickhouse.reader import duckdb_types

ROWS = pa.table({
    "k": ["a", "a", "a", "b", "b", None],
    "x": [1.0, 2.0, 10.0, 3.5, None, 7.0],
    # nanosecond timestamps too large for a float to divide exactly
    "t": [1_794_700_000_123_456_789, 1_794_700_003_600_000_000, 1_794_700_007_199_999_999,
          1_794_786_400_000_000_001, 1_794_786_400_000_000_002, 1_794_786_400_000_000_003],
    "m": ["Timeout after 30000 ms", "id 42 and 7", "no digits", "x1y2", None, "a'b"],
    "ts": pa.array([datetime(2026, 11, 9, 10, 30), datetime(2026, 11, 15, 23, 59),
                    datetime(2026, 11, 16, 0, 0), datetime(2026, 11, 1, 1, 1),
                    datetime(2026, 11, 2, 2, 2), datetime(2026, 11, 3, 3, 3)], pa.timestamp("us")),
})


@pytest.fixture(scope="module")
def engines(chdb_root):
    duck = duckdb.connect()
    duck.register("t_arrow", ROWS)
    duck.execute("CREATE TABLE t AS SELECT * FROM t_arrow")
    click = ChdbClient(parse_location(f"chdb://{chdb_root}"))
    click.command("CREATE DATABASE IF NOT EXISTS dialect_cases")
    click.command("USE dialect_cases")
    click.command("DROP TABLE IF EXISTS t")
    click.command("CREATE TABLE t (k Nullable(String), x Nullable(Float64), t Int64, "
                  "m Nullable(String), ts DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY t")
    click.insert_arrow("t", ROWS)
    yield duck, click
    click.close()
    duck.close()


def both(engines, sql: str, params: dict | None = None) -> list[dict]:
    duck, click = engines
    expected = duck.sql(sql, params=params).to_arrow_table().to_pylist()
    native, values = dialect.bind(dialect.translate(sql), params)
    actual = duckdb_types(click.query_arrow(native, values)).to_pylist()
    assert_same_value(expected, actual, sql)
    return expected


def test_quantile_cont_is_exact_with_linear_interpolation(engines) -> None:
    rows = both(engines, "SELECT k, quantile_cont(x, 0.5) AS p50, quantile_cont(x, 0.95) AS p95 "
                         "FROM t GROUP BY k ORDER BY k NULLS LAST")
    assert rows[0] == {"k": "a", "p50": 2.0, "p95": pytest.approx(9.2)}


def test_integer_division_keeps_every_nanosecond(engines) -> None:
    rows = both(engines, "SELECT t, (t // 3600000000000) * 3600000000000 AS hour_ns FROM t ORDER BY t")
    assert rows[0]["hour_ns"] == 1_794_697_200_000_000_000


def test_regexp_replace_all_and_first(engines) -> None:
    both(engines, r"SELECT m, regexp_replace(m, '\d+', '<N>', 'g') AS every, "
                  r"regexp_replace(m, '\d+', '<N>') AS first FROM t ORDER BY t")


def test_ordered_aggregates(engines) -> None:
    rows = both(engines, "SELECT k, array_agg(t ORDER BY x DESC) AS by_x, array_agg(x ORDER BY t) AS xs, "
                         "string_agg(DISTINCT m, '; ' ORDER BY m) AS ms FROM t WHERE k IS NOT NULL "
                         "GROUP BY k ORDER BY k")
    assert rows[0]["ms"] == "Timeout after 30000 ms; id 42 and 7; no digits"


def test_recency_ranking_replaces_max_by_with_a_count(engines) -> None:
    both(engines, "WITH r AS (SELECT k, t, row_number() OVER (PARTITION BY k ORDER BY t DESC) AS n "
                  "FROM t) SELECT k, array_agg(t ORDER BY n) AS newest FROM r WHERE n <= 2 "
                  "GROUP BY k ORDER BY k NULLS LAST")


def test_types_and_names_are_duckdbs(engines) -> None:
    rows = both(engines, "SELECT q.k, count(*) AS n, sum(CASE WHEN q.x > 2 THEN 1 ELSE 0 END) AS big, "
                         "max(q.x) > 5 AS has_large, CAST(date_trunc('day', min(q.ts)) AS TIMESTAMP) AS d, "
                         "CAST(date_trunc('week', min(q.ts)) AS DATE) AS w "
                         "FROM t q GROUP BY q.k ORDER BY q.k NULLS LAST")
    assert list(rows[0]) == ["k", "n", "big", "has_large", "d", "w"]
    assert rows[0]["has_large"] is True and rows[0]["n"] == 3


def test_aggregates_over_no_rows_are_null(engines) -> None:
    rows = both(engines, "SELECT sum(x) AS s, min(t) AS lo FROM t WHERE k = 'none'")
    assert rows == [{"s": None, "lo": None}]


def test_parameters_are_values_never_sql(engines) -> None:
    rows = both(engines, "SELECT count(*) AS n FROM t WHERE m = $m OR k IN ($k_0, $k_1) AND ts >= $since",
                {"m": "a'b", "k_0": "b", "k_1": "x'); DROP TABLE t; --", "since": datetime(2026, 11, 2)})
    assert rows == [{"n": 2}]   # the row with m = "a'b", and one "b" row on or after 2 November
    both(engines, "SELECT count(*) AS n FROM t WHERE list_contains($ks, k)", {"ks": ["a", "it's"]})
    # Backslashes and tabs arrive as written: a regular expression stays what it was.
    rows = both(engines, "SELECT m, regexp_matches(m, $pattern) AS hit, $tab AS tab, $flag AS flag, "
                         "$nothing AS nothing FROM t ORDER BY t",
                {"pattern": r"^id \d+ and \d$", "tab": "a\tb\\c", "flag": True, "nothing": None})
    assert [r["hit"] for r in rows][:3] == [False, True, False]


def test_unmapped_constructs_are_refused_not_mistranslated() -> None:
    with pytest.raises(dialect.DialectError):
        dialect.translate("SELECT max_by(k, t, 3) FROM t")
    with pytest.raises(dialect.DialectError):
        dialect.bind(dialect.translate("SELECT 1 WHERE k = $missing"), {})
