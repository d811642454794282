"""The OpenTelemetry Collector's ClickHouse traces table, read as raw spans.

Teams that already run the Collector's `clickhouseexporter` have their spans in its
`otel_traces` table: one row per span, ids as hex text, `SpanKind`/`StatusCode` as names,
attributes as `Map(LowCardinality(String), String)` and events as the nested arrays
`Events.Timestamp`, `Events.Name` and `Events.Attributes`. This module turns such rows
into the raw spans table (`raw_schema.RAW_SPAN_SCHEMA`) that `normalise` maps onto steps,
so imported spans go through exactly the convention rules of OTLP ingest.

The reshaping is one ClickHouse query per batch: names to OTLP numbers, maps to the
parallel key/value lists, events to the exception, first-token and content columns by
the rules of `span_events`. Nothing is done per span in Python.

Two generations of the exporter's table are read, told apart by their columns in
`system.columns`:

* since mid-2023: `ScopeName`/`ScopeVersion` columns, `Duration` UInt64 (Int64 at first);
* before: no scope columns (from February 2023 the scope sat in `SpanAttributes` as
  `otel.scope.name` and `otel.scope.version`), `Duration` Int64.

Kinds and codes are read in either spelling the exporter has written: pdata's names
(`Server`, `Ok`) and the proto names of its first versions (`SPAN_KIND_SERVER`,
`STATUS_CODE_OK`).

What the exporter did not keep cannot come back: attribute values are text (`AsString`:
a double 32.0 reads `32`, where OTLP ingest writes `32.0`), and maps are stored sorted
by key. Keys are read back in natural order (`gen_ai.prompt.2` before
`gen_ai.prompt.10`), which restores the message order of flattened prompts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from stepscope.clickhouse.client import Client
from stepscope.ingest.raw_schema import RAW_SPAN_SCHEMA
from stepscope.ingest.span_events import (
    CONTENT,
    EXCEPTION,
    EXCEPTION_MESSAGE_KEY,
    EXCEPTION_TYPE_KEY,
    FIRST_TOKEN,
    content_key_sql,
    event_role_sql,
)

DEFAULT_TABLE = "otel_traces"
# Time buckets per batch when planning windows: the finer, the fuller the windows (and
# the more rows the planning query returns: 8 per batch of spans in the range).
BUCKETS_PER_BATCH = 8
# Earliest instant a DateTime64(9) holds (1900-01-01), the lower bound when none is given.
_DATETIME64_MIN_NS = -2_208_988_800 * 10**9
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Where the older exporter put the instrumentation scope.
SCOPE_NAME_KEY, SCOPE_VERSION_KEY = "otel.scope.name", "otel.scope.version"
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")


class OtelTableError(ValueError):
    """A source table that is not (or not readable as) the exporter's traces table."""


# -- what the table must hold -----------------------------------------------------------


def _text(t: str) -> bool:
    return "String" in t and not t.startswith(("Array", "Map"))


def _map(t: str) -> bool:
    return t.startswith("Map(") and t.endswith("String)")


# Column -> (what its type must be, the check). Both generations share these.
REQUIRED_COLUMNS: dict[str, tuple[str, object]] = {
    "Timestamp": ("DateTime64", lambda t: t.startswith("DateTime64")),
    "TraceId": ("String", _text),
    "SpanId": ("String", _text),
    "ParentSpanId": ("String", _text),
    "SpanName": ("String", _text),
    "SpanKind": ("String", _text),
    "ResourceAttributes": ("Map(String, String)", _map),
    "SpanAttributes": ("Map(String, String)", _map),
    "Duration": ("an integer", lambda t: re.fullmatch(r"U?Int(8|16|32|64)", t) is not None),
    "StatusCode": ("String", _text),
    "StatusMessage": ("String", _text),
    "Events.Timestamp": ("Array(DateTime64)", lambda t: t.startswith("Array(DateTime64")),
    "Events.Name": ("Array(String)", lambda t: t.startswith("Array(") and "String" in t),
    "Events.Attributes": ("Array(Map(String, String))",
                          lambda t: t.startswith("Array(Map(") and t.endswith("String))")),
}
SCOPE_COLUMNS = ("ScopeName", "ScopeVersion")


@dataclass(frozen=True)
class OtelTable:
    """A checked exporter table: where it is and which generation it is."""

    database: str
    table: str
    scope_columns: bool

    @property
    def qualified(self) -> str:
        return f"`{self.database}`.`{self.table}`"

    @property
    def display(self) -> str:
        return f"{self.database}.{self.table}"


def check_name(table: str) -> str:
    if not _NAME.match(table):
        raise OtelTableError(f"--table {table!r}: a table name is letters, digits and underscores")
    return table


def describe(client: Client, database: str, table: str) -> OtelTable:
    """Check that `database.table` has the exporter's columns; errors name what is wrong."""
    check_name(table)
    rows = client.query_arrow(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        {"db": database, "t": table})
    columns = dict(zip(rows.column("name").to_pylist(), rows.column("type").to_pylist(),
                       strict=True))
    if not columns:
        known = client.query_arrow(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            {"db": database}).column("name").to_pylist()
        hint = (f"tables there: {', '.join(known[:8])}" if known
                else f"database {database!r} has no tables (or does not exist)")
        raise OtelTableError(f"--table {table}: no table {database}.{table} in the source; {hint}")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise OtelTableError(
            f"--table {database}.{table} is not the Collector clickhouseexporter's traces table: "
            f"no column {', '.join(missing)}")
    for name, (expected, fits) in REQUIRED_COLUMNS.items():
        actual = columns[name]
        if "JSON" in actual:
            raise OtelTableError(
                f"--table {database}.{table}: column {name} is {actual}: the exporter's JSON-typed "
                "schema (feature gate clickhouse.json) is not supported; export with Map columns")
        if not fits(actual):  # type: ignore[operator]
            raise OtelTableError(f"--table {database}.{table}: column {name} is {actual}, "
                                 f"expected {expected} as the exporter writes it")
    return OtelTable(database, table, all(c in columns for c in SCOPE_COLUMNS))


# -- the query --------------------------------------------------------------------------


def _natural_key(key: str) -> str:
    """ClickHouse sort key ordering `x.2.y` before `x.10.y` (digit runs by value)."""
    return (f"arrayMap(t -> (if(match(t, '^[0-9]+$'), '', t), toUInt64OrZero(t), t), "
            f"extractAll({key}, '[0-9]+|[^0-9]+'))")


def _pairs(map_expr: str) -> str:
    """A map's entries as (key, value) tuples in natural key order."""
    return (f"arraySort(p -> {_natural_key('p.1')}, "
            f"CAST({map_expr}, 'Array(Tuple(String, String))'))")


def _names(kinds: tuple[str, ...], column: str, prefix: str) -> str:
    """A name column (either generation's spelling) to its OTLP number, 0 when unknown."""
    names = ", ".join(f"'{k}'" for k in kinds)
    numbers = ", ".join(str(i) for i in range(len(kinds)))
    return (f"toInt32(transform(replaceRegexpOne(upper(toString({column})), '^{prefix}', ''), "
            f"[{names}], [{numbers}], 0))")


def _quoted(expr: str) -> str:
    return f"'\\'', {expr}, '\\''"


def _id_problem(expr: str, label: str, digits: int) -> str:
    return (f"NOT match({expr}, '^[0-9a-f]{{{digits}}}$') OR {expr} = repeat('0', {digits}), "
            f"concat('span ', {_quoted('name')}, ': {label} ', {_quoted(expr)}, "
            f"' is not {digits} hex digits (nor all zeros)')")


def select_sql(source: OtelTable) -> str:
    """The query reading one time window (`{lo:Int64}`, `{hi:Int64}`, nanoseconds) as raw
    spans, plus `_problem`: why a row cannot be a span (empty when it can)."""
    if source.scope_columns:
        attrs = _pairs("SpanAttributes")
        scope_name, scope_version = "nullIf(ScopeName, '')", "nullIf(ScopeVersion, '')"
    else:
        attrs = (f"arrayFilter(p -> p.1 NOT IN ('{SCOPE_NAME_KEY}', '{SCOPE_VERSION_KEY}'), "
                 f"{_pairs('SpanAttributes')})")
        scope_name = f"nullIf(SpanAttributes['{SCOPE_NAME_KEY}'], '')"
        scope_version = f"nullIf(SpanAttributes['{SCOPE_VERSION_KEY}'], '')"
    content_pairs = _pairs("a")
    return f"""
WITH
    CAST(`Events.Name`, 'Array(String)') AS _event_names,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS _event_times,
    arrayMap(n -> {event_role_sql('n')}, _event_names) AS _event_roles,
    `Events.Attributes` AS _event_attrs,
    _event_attrs[indexOf(_event_roles, '{EXCEPTION}')] AS _exception,
    {attrs} AS _attrs,
    {_pairs('ResourceAttributes')} AS _resource,
    arrayMap((n, a, r) -> if(r = '{CONTENT}', arrayMap(p -> ({content_key_sql('n', 'p.1')}, p.2),
        {content_pairs}), []), _event_names, _event_attrs, _event_roles) AS _content
SELECT
    lower(toString(TraceId)) AS trace_id,
    lower(toString(SpanId)) AS span_id,
    nullIf(nullIf(lower(toString(ParentSpanId)), ''), '0000000000000000') AS parent_span_id,
    toUnixTimestamp64Nano(Timestamp) AS start_time_ns,
    start_time_ns + toInt64(Duration) AS end_time_ns,
    toString(SpanName) AS name,
    {_names(_SPAN_KINDS, 'SpanKind', 'SPAN_KIND_')} AS span_kind,
    {_names(_STATUS_CODES, 'StatusCode', 'STATUS_CODE_')} AS status_code,
    nullIf(toString(StatusMessage), '') AS status_message,
    arrayMap(p -> p.1, _attrs) AS attr_keys,
    arrayMap(p -> p.2, _attrs) AS attr_values,
    arrayMap(p -> p.1, _resource) AS resource_keys,
    arrayMap(p -> p.2, _resource) AS resource_values,
    {scope_name} AS scope_name,
    {scope_version} AS scope_version,
    _event_names AS event_names,
    if(mapContains(_exception, '{EXCEPTION_TYPE_KEY}'),
       _exception['{EXCEPTION_TYPE_KEY}'], NULL) AS exception_type,
    if(mapContains(_exception, '{EXCEPTION_MESSAGE_KEY}'),
       _exception['{EXCEPTION_MESSAGE_KEY}'], NULL) AS exception_message,
    if(has(_event_roles, '{FIRST_TOKEN}'),
       arrayMin(arrayFilter((t, r) -> r = '{FIRST_TOKEN}', _event_times, _event_roles)),
       NULL) AS first_token_ns,
    arrayMap(p -> p.1, arrayFlatten(_content)) AS event_attr_keys,
    arrayMap(p -> p.2, arrayFlatten(_content)) AS event_attr_values,
    multiIf({_id_problem('trace_id', 'trace id', 32)},
            {_id_problem('span_id', 'span id', 16)},
            parent_span_id IS NOT NULL AND NOT match(parent_span_id, '^[0-9a-f]{{16}}$'),
            concat('span ', {_quoted('name')}, ': parent span id ', {_quoted('parent_span_id')},
                   ' is not 16 hex digits'),
            '') AS _problem
FROM {source.qualified}
WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
ORDER BY Timestamp, TraceId, SpanId"""


# -- batches of bounded size --------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Spans that started in [start_ns, end_ns): one batch of the import."""

    start_ns: int
    end_ns: int
    spans: int


def _range_sql(source: OtelTable) -> str:
    return (f"FROM {source.qualified} WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) "
            "AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})")


def plan_windows(client: Client, source: OtelTable, since_ns: int | None, until_ns: int | None,
                 batch_spans: int) -> list[Window]:
    """Contiguous time windows over [since, until), in order, each of at most about
    `batch_spans` spans (more only when that many spans share one nanosecond).

    The spans are counted per time bucket (a scan of the `Timestamp` column alone),
    buckets sized to hold an eighth of a batch on average, which consecutive windows
    then pack; a bucket busier than a batch is counted again in finer buckets. Each
    window is then read by its own query, so neither stepscope nor the server ever holds
    more than a batch (the import reads one ahead: two).
    """
    lo = since_ns if since_ns is not None else _DATETIME64_MIN_NS
    hi = until_ns if until_ns is not None else 2**63 - 1
    first = client.query_arrow(
        "SELECT count() AS n, min(toUnixTimestamp64Nano(Timestamp)) AS first, "
        f"max(toUnixTimestamp64Nano(Timestamp)) AS last {_range_sql(source)}",
        {"lo": str(lo), "hi": str(hi)})
    total = int(first.column("n")[0].as_py() or 0)
    if total == 0:
        return []
    start = max(lo, int(first.column("first")[0].as_py()))
    end = min(hi, int(first.column("last")[0].as_py()) + 1)
    buckets = _buckets(client, source, start, end, total, batch_spans)
    windows: list[Window] = []
    for b_start, b_end, n in buckets:
        if windows and windows[-1].spans + n <= batch_spans:
            windows[-1] = Window(windows[-1].start_ns, b_end, windows[-1].spans + n)
        else:
            windows.append(Window(b_start, b_end, n))
    # Contiguous from `since` to `until`: a span written into a gap meanwhile is read too.
    edges = [lo if since_ns is not None else start] + [w.start_ns for w in windows[1:]] + \
            [hi if until_ns is not None else end]
    return [Window(edges[i], edges[i + 1], w.spans) for i, w in enumerate(windows)]


def _buckets(client: Client, source: OtelTable, start: int, end: int, total: int,
             batch_spans: int) -> list[tuple[int, int, int]]:
    """(start, end, spans) of the non-empty buckets in [start, end), in order, each of
    at most `batch_spans` spans unless a single nanosecond holds more."""
    width = max(1, (end - start) * batch_spans // (BUCKETS_PER_BATCH * total))
    counts = client.query_arrow(
        f"SELECT intDiv(toUnixTimestamp64Nano(Timestamp) - {{start:Int64}}, {{width:Int64}}) AS b, "
        f"count() AS n {_range_sql(source)} GROUP BY b ORDER BY b",
        {"start": str(start), "width": str(width), "lo": str(start), "hi": str(end)})
    out: list[tuple[int, int, int]] = []
    for b, n in zip(counts.column("b").to_pylist(), counts.column("n").to_pylist(), strict=True):
        b_start = start + b * width
        b_end = min(end, b_start + width)
        if n > batch_spans and width > 1:
            out.extend(_buckets(client, source, b_start, b_end, n, batch_spans))
        else:
            out.append((b_start, b_end, n))
    return out


# -- rows to raw spans ------------------------------------------------------------------


def raw_spans(rows: pa.Table, source_file: str, batch: int) -> tuple[pa.Table, pa.Table]:
    """The query's rows as a raw spans table, and the rows that cannot be spans
    (columns `name`, `reason`)."""
    problem = rows.column("_problem")
    bad = pc.not_equal(problem, "")
    rejected = rows.filter(bad).select(["name", "_problem"]).rename_columns(["name", "reason"])
    good = rows.filter(pc.invert(bad)) if rejected.num_rows else rows
    n = good.num_rows
    columns = []
    for field in RAW_SPAN_SCHEMA:
        if field.name == "source_file":
            columns.append(pa.array([source_file] * n, pa.string()))
        elif field.name == "source_batch":
            columns.append(pa.array([batch] * n, pa.int32()))
        else:
            columns.append(good.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=RAW_SPAN_SCHEMA), rejected
