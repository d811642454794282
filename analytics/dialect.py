"""One source per query, two engines: the analytics SQL in ClickHouse's dialect.

Every query in `sql/` is written once, in the SQL DuckDB runs. For a ClickHouse store
the text is translated with SQLGlot, plus the mappings SQLGlot lacks or gets wrong for
us (each checked against ClickHouse itself by the equivalence tests):

* `quantile_cont(x, q)` becomes `quantileExactInclusive(q)(x)`: exact, with the same
  linear interpolation between order statistics (R7, numpy's default). SQLGlot's
  `PERCENTILE_CONT` is not a ClickHouse function, and ClickHouse's plain `quantile` is
  approximate.
* `a // b` becomes `intDiv(a, b)`: SQLGlot divides as floats, which loses the low bits
  of nanosecond timestamps.
* `regexp_replace(s, p, r, 'g')` becomes `replaceRegexpAll` (`replaceRegexpOne` without
  the flag).
* `array_agg(x ORDER BY k)` and `string_agg([DISTINCT] x, sep ORDER BY x)`, which
  ClickHouse's `groupArray` and `groupConcat` cannot order, become sorts of
  `groupArray` / `groupUniqArray` results.
* Every plain column in a select list gets its own name as an alias: ClickHouse names
  the result column of `c.trace_id` "c.trace_id", DuckDB names it "trace_id".
* Values get DuckDB's types where ClickHouse's differ: a comparison used as a value is
  BOOLEAN (not UInt8), counts and integer CASE results are signed 64-bit, TIMESTAMP is
  microseconds (ClickHouse's DateTime is seconds).
* `$name` parameters become ClickHouse query parameters `{name:Type}`, the type taken
  from the value at execution (`bind`), so values never become SQL text.

`translate` caches by query text, so each distinct query is parsed once per process.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from typing import Any

import sqlglot
from sqlglot import exp

DUCKDB = "duckdb"
CLICKHOUSE = "clickhouse"
_PARAM_MARK = re.compile(r"__stepscope_param_(\w+?)__")


class DialectError(RuntimeError):
    """A query uses a construct the translation does not map (a bug in stepscope)."""


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The ClickHouse text of a DuckDB query; parameters stay as markers for `bind`."""
    return _post_order(sqlglot.parse_one(sql, read=DUCKDB)).sql(dialect=CLICKHOUSE)


@functools.lru_cache(maxsize=256)
def translate_condition(condition: str) -> str:
    """The ClickHouse text of a DuckDB boolean expression (a WHERE condition)."""
    tree = _post_order(sqlglot.parse_one(f"SELECT 1 WHERE {condition}", read=DUCKDB))
    return tree.args["where"].this.sql(dialect=CLICKHOUSE)


def _post_order(node: exp.Expression) -> exp.Expression:
    """Translate children first, so a replaced node is built from translated parts."""
    for child in list(node.iter_expressions()):
        translated = _post_order(child)
        if translated is not child:
            child.replace(translated)
    return _to_clickhouse(node)


def bind(sql: str, params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Markers of `translate` as typed ClickHouse parameters `{name:Type}`, with values.

    ClickHouse parses each value as the type named in the query, so a string is never
    read as SQL. Times become text with their microseconds (ClickHouse clients format
    datetimes to the second); the clients format the rest (stepscope.clickhouse.client).
    """
    params = params or {}
    used: dict[str, Any] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise DialectError(f"query parameter ${name} has no value")
        value = params[name]
        used[name] = _param_value(value)
        return "{" + f"{name}:{_param_type(value)}" + "}"

    return _PARAM_MARK.sub(fill, sql), used


def _param_type(value: Any) -> str:
    if value is None:
        return "Nullable(String)"
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, datetime):
        return "DateTime64(6, 'UTC')"
    if isinstance(value, date):
        return "Date"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "Array(String)"
    raise DialectError(f"no ClickHouse parameter type for {type(value).__name__}")


def _param_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # As UTC (the analytics pass naive UTC already), with the microseconds.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _to_clickhouse(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Placeholder):
        return exp.var(f"__stepscope_param_{node.name}__")
    if isinstance(node, exp.Select):
        _alias_plain_columns(node)
        return node
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.TIMESTAMP,
                                                       exp.DataType.Type.TIMESTAMPNTZ):
        # DuckDB's TIMESTAMP is microseconds; ClickHouse's DateTime is seconds.
        node.set("to", exp.DataType.build("Nullable(DateTime64(6, 'UTC'))", dialect=CLICKHOUSE))
        return node
    if isinstance(node, exp.Count):
        return exp.cast(node, exp.DataType.build("BIGINT"))
    if isinstance(node, exp.Alias | exp.Coalesce | exp.If | exp.Case):
        _typed_values(node)
        return node
    if isinstance(node, exp.MapKeys):
        return exp.Anonymous(this="mapKeys", expressions=[node.this])
    if isinstance(node, exp.PercentileCont):
        return _parametric("quantileExactInclusive", [node.expression], [node.this])
    if isinstance(node, exp.IntDiv):
        return exp.func("intDiv", node.this, node.expression)
    if isinstance(node, exp.RegexpReplace):
        return _regexp_replace(node)
    if isinstance(node, exp.GroupConcat):
        return _string_agg(node)
    if isinstance(node, exp.ArrayAgg):
        return _array_agg(node)
    if isinstance(node, exp.ArgMax | exp.ArgMin) and node.args.get("count") is not None:
        raise DialectError("max_by/min_by with a count has no ClickHouse form; "
                           "use row_number() and array_agg(... ORDER BY ...)")
    return node


_PREDICATES = (exp.Predicate, exp.Connector, exp.Not)


def _typed_values(node: exp.Expression) -> None:
    """Give values the types DuckDB gives them where ClickHouse's differ.

    A comparison used as a value (`x > 0 AS had_error`, a CASE branch, a coalesce
    argument) is a UInt8 in ClickHouse, BOOLEAN in DuckDB; and an integer literal in a
    CASE branch is the smallest unsigned type, so that `sum(CASE ... THEN 1 ELSE 0 END)`
    is unsigned and mixes badly with signed counts. Both become what DuckDB has.
    """
    slots: list[tuple[exp.Expression, str]] = []
    if isinstance(node, exp.Alias):
        slots.append((node, "this"))
    elif isinstance(node, exp.Coalesce):
        slots.append((node, "this"))
        slots.extend((item, "") for item in node.expressions)
    elif isinstance(node, exp.If):
        slots.append((node, "true"))
    elif isinstance(node, exp.Case):
        slots.append((node, "default"))
    for owner, key in slots:
        value = owner.args.get(key) if key else owner
        if value is None:
            continue
        if isinstance(value.unnest(), _PREDICATES):
            typed = exp.cast(value.copy(), exp.DataType.build("BOOLEAN"))
        elif isinstance(node, exp.If | exp.Case) and isinstance(value, exp.Literal) and value.is_int:
            typed = exp.cast(value.copy(), exp.DataType.build("BIGINT"))
        else:
            continue
        value.replace(typed)


def _alias_plain_columns(select: exp.Select) -> None:
    projections = []
    for item in select.expressions:
        if isinstance(item, exp.Column) and not isinstance(item.this, exp.Star) and item.table:
            item = exp.alias_(item, item.name, quoted=item.this.quoted)
        projections.append(item)
    select.set("expressions", projections)


def _parametric(name: str, params: list[exp.Expression], args: list[exp.Expression]) -> exp.Expression:
    return exp.ParameterizedAgg(this=name, expressions=params, params=args)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    modifiers = node.args.get("modifiers")
    flags = modifiers.name if isinstance(modifiers, exp.Literal) else ""
    if set(flags) - {"g"}:
        raise DialectError(f"regexp_replace flags {flags!r} have no ClickHouse form")
    name = "replaceRegexpAll" if "g" in flags else "replaceRegexpOne"
    return exp.func(name, node.this, node.expression, node.args["replacement"])


def _ordered_parts(node: exp.Expression) -> tuple[exp.Expression, list[exp.Ordered]]:
    """(value, ORDER BY items) of an aggregate's argument `value ORDER BY ...`."""
    if isinstance(node, exp.Order):
        return node.this, list(node.expressions)
    return node, []


def _sorted_group_array(value: exp.Expression, order: list[exp.Ordered]) -> exp.Expression:
    """groupArray(value) in the order of `order` (all ascending or all descending)."""
    directions = {bool(o.args.get("desc")) for o in order}
    if len(directions) > 1:
        raise DialectError("array_agg with mixed sort directions has no ClickHouse form")
    sort = "arrayReverseSort" if directions == {True} else "arraySort"
    keys = [o.this for o in order]
    if len(keys) == 1 and keys[0] == value:
        return exp.func(sort, exp.func("groupArray", value))
    key = ", ".join(k.sql(CLICKHOUSE) for k in keys)
    pairs = f"groupArray((({key}), {value.sql(CLICKHOUSE)}))"
    return sqlglot.parse_one(f"arrayMap(_p -> _p.2, {sort}(_p -> _p.1, {pairs}))", read=CLICKHOUSE)


def _array_agg(node: exp.ArrayAgg) -> exp.Expression:
    value, order = _ordered_parts(node.this)
    if isinstance(value, exp.Distinct):
        if order:
            raise DialectError("array_agg(DISTINCT ... ORDER BY ...) has no ClickHouse form")
        return exp.func("groupUniqArray", *value.expressions)
    if not order:
        return exp.func("groupArray", value)
    return _sorted_group_array(value, order)


def _string_agg(node: exp.GroupConcat) -> exp.Expression:
    value, order = _ordered_parts(node.this)
    separator = node.args.get("separator") or exp.Literal.string(",")
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        (value,) = value.expressions
    if order and not (len(order) == 1 and order[0].this == value and not order[0].args.get("desc")):
        raise DialectError("string_agg is translated only when ordered by its own value")
    items = exp.func("groupUniqArray" if distinct else "groupArray", value)
    if order:
        items = exp.func("arraySort", items)
    # DuckDB's string_agg of no value is NULL; ClickHouse's join of an empty array is ''.
    joined = exp.func("arrayStringConcat", items, separator)
    return exp.func("nullif", joined, exp.Literal.string(""))
