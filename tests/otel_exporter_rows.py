"""Spans into the OpenTelemetry Collector's ClickHouse traces table, as its exporter writes them.

Follows the Go code of opentelemetry-collector-contrib's `exporter/clickhouseexporter`,
so that tests of `stepscope import clickhouse-otel` read rows like those of a real
Collector, made from real OTLP payloads:

* `CURRENT` follows `exporter_traces.go` and `internal/sqltemplates/traces_table.sql` as
  of contrib commit 2bf6b9e (2026, the template with text indexes): `ScopeName`/
  `ScopeVersion` columns, `span.Kind().String()` and `status.Code().String()` (`Client`,
  `Ok`), `Duration` UInt64 as `EndTimestamp - StartTimestamp`, attribute maps from
  `internal.AttributesToMap` (clickhouse-go's `orderedmap.CollectN`: entries sorted by
  key, values `AsString()`), and the table as it is created on ClickHouse 26.2 and
  later (chdb's engine is 26.x), text indexes and ALIAS columns included.
* `V2022` follows the first traces table (contrib v0.60, August 2022, until spring
  2023): no scope columns (the scope, when set, went into `SpanAttributes` as
  `otel.scope.name`/`otel.scope.version`), `traceutil.SpanKindStr`/`StatusCodeStr`
  (`SPAN_KIND_CLIENT`, `STATUS_CODE_OK`), `Duration` Int64, and attribute maps built as
  Go maps, whose order is random (here: reversed, so no test can depend on it).

Attribute values follow pdata's `Value.AsString()`: strings as they are, `true`/`false`,
integers in decimal, doubles as Go's `encoding/json` writes them (ES6 style: 32.0 is
`32`, 1e-7 is `1e-7`), bytes as standard base64, arrays and key-value lists as JSON of
`AsRaw()` (map keys sorted, no HTML escaping), an empty value as `""`.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

_MAP = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("ns", tz="UTC")

# The template's two ALIAS columns (one line each there).
_ITEMS = ("{column} Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), "
          "CAST({map}, 'Array(Tuple(String, String))'))")
CURRENT_DDL = """CREATE TABLE IF NOT EXISTS {database}.{table} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    {resource_items},
    {span_items},
    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""

V2022_DDL = """CREATE TABLE IF NOT EXISTS {database}.{table} (
     Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
     TraceId String CODEC(ZSTD(1)),
     SpanId String CODEC(ZSTD(1)),
     ParentSpanId String CODEC(ZSTD(1)),
     TraceState String CODEC(ZSTD(1)),
     SpanName LowCardinality(String) CODEC(ZSTD(1)),
     SpanKind LowCardinality(String) CODEC(ZSTD(1)),
     ServiceName LowCardinality(String) CODEC(ZSTD(1)),
     ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
     SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
     Duration Int64 CODEC(ZSTD(1)),
     StatusCode LowCardinality(String) CODEC(ZSTD(1)),
     StatusMessage String CODEC(ZSTD(1)),
     Events Nested (
         Timestamp DateTime64(9),
         Name LowCardinality(String),
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
     Links Nested (
         TraceId String,
         SpanId String,
         TraceState String,
         Attributes Map(LowCardinality(String), String)
     ) CODEC(ZSTD(1)),
     INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
     INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
     INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toUnixTimestamp(Timestamp), TraceId)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1"""

# The table of the exporter's JSON mode (feature gate `clickhouse.json`), which the
# import refuses: attributes as the JSON type, not maps.
JSON_DDL = """CREATE TABLE IF NOT EXISTS {database}.{table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes JSON CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes JSON CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes JSON
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes JSON
    ) CODEC(ZSTD(1)),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1"""


@dataclass(frozen=True)
class ExporterVersion:
    name: str
    ddl: str
    scope_columns: bool
    span_kinds: tuple[str, ...]
    status_codes: tuple[str, ...]
    sorted_maps: bool


CURRENT = ExporterVersion(
    "current", CURRENT_DDL, True,
    ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"),
    ("Unset", "Ok", "Error"), sorted_maps=True)
V2022 = ExporterVersion(
    "v2022", V2022_DDL, False,
    tuple(f"SPAN_KIND_{k}" for k in ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER",
                                     "CONSUMER")),
    ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"), sorted_maps=False)


# -- pdata's Value.AsString ------------------------------------------------------------------


def go_float(f: float) -> str:
    """Go's float64AsString (and encoding/json's float encoder): ES6 number formatting."""
    if math.isinf(f) or math.isnan(f):
        return "json: unsupported value: " + ("NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf"))
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        return np.format_float_scientific(f, unique=True, trim="-", exp_digits=1)
    return np.format_float_positional(f, unique=True, trim="-")


def _go_json(value: Any) -> str:
    """encoding/json without HTML escaping, for the plain values of `AsRaw()`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            raise ValueError("unsupported value")
        return go_float(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace(
            "\u2029", "\\u2029")
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    return "{" + ",".join(f"{_go_json(k)}:{_go_json(value[k])}" for k in sorted(value)) + "}"


def _as_raw(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_as_raw(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _as_raw(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def as_string(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which is None:
        return ""
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return go_float(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    try:
        return _go_json(_as_raw(value))
    except ValueError:  # json.Marshal's error is dropped: the value is empty
        return ""


def attributes_map(attributes: Iterable[KeyValue], version: ExporterVersion,
                   extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """`AttributesToMap`: a Go map (later kept ordered and sorted by key) of AsString."""
    entries = {kv.key: as_string(kv.value) for kv in attributes}
    entries.update(extra or {})
    items = list(entries.items())
    return sorted(items) if version.sorted_maps else items[::-1]


# -- requests to rows --------------------------------------------------------------------


def _hex_or_empty(raw: bytes) -> str:
    return "" if not any(raw) else raw.hex()


def request_from(doc: ExportTraceServiceRequest | dict) -> ExportTraceServiceRequest:
    """A request message from protobuf or an OTLP/JSON document (hex ids, integer enums)."""
    if isinstance(doc, ExportTraceServiceRequest):
        return doc
    request = ExportTraceServiceRequest()
    for rs_doc in doc.get("resourceSpans", []):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(_key_values(rs_doc.get("resource", {}).get("attributes")))
        for ss_doc in rs_doc.get("scopeSpans", []):
            ss = rs.scope_spans.add()
            scope = ss_doc.get("scope", {})
            ss.scope.name, ss.scope.version = scope.get("name", ""), scope.get("version", "")
            ss.spans.extend(_span(s) for s in ss_doc.get("spans", []))
    return request


def _span(doc: dict) -> Span:
    status = doc.get("status", {})
    return Span(
        trace_id=bytes.fromhex(doc["traceId"]), span_id=bytes.fromhex(doc["spanId"]),
        parent_span_id=bytes.fromhex(doc.get("parentSpanId", "")),
        trace_state=doc.get("traceState", ""), name=doc.get("name", ""), kind=doc.get("kind", 0),
        start_time_unix_nano=int(doc["startTimeUnixNano"]),
        end_time_unix_nano=int(doc["endTimeUnixNano"]),
        attributes=_key_values(doc.get("attributes")),
        events=[Span.Event(name=e.get("name", ""), time_unix_nano=int(e.get("timeUnixNano", 0)),
                           attributes=_key_values(e.get("attributes")))
                for e in doc.get("events", [])],
        status=Status(code=status.get("code", 0), message=status.get("message", "")),
    )


def _key_values(items: list[dict] | None) -> list[KeyValue]:
    return [KeyValue(key=item["key"], value=_any_value(item.get("value") or {}))
            for item in items or []]


def _any_value(doc: dict) -> AnyValue:
    if not doc:
        return AnyValue()
    ((which, inner),) = doc.items()
    if which == "stringValue":
        return AnyValue(string_value=inner)
    if which == "boolValue":
        return AnyValue(bool_value=inner)
    if which == "intValue":
        return AnyValue(int_value=int(inner))
    if which == "doubleValue":
        return AnyValue(double_value=float(inner))
    if which == "bytesValue":
        return AnyValue(bytes_value=base64.b64decode(inner))
    value = AnyValue()
    if which == "arrayValue":
        value.array_value.values.extend(_any_value(v) for v in inner.get("values", []))
    elif which == "kvlistValue":
        value.kvlist_value.values.extend(_key_values(inner.get("values")))
    else:
        raise ValueError(f"not an OTLP/JSON AnyValue: {which}")
    return value


def exporter_rows(requests: Iterable[ExportTraceServiceRequest | dict],
                  version: ExporterVersion = CURRENT) -> pa.Table:
    """The rows the exporter inserts for these requests, in its column order."""
    rows: dict[str, list[Any]] = {name: [] for name in _columns(version)}
    for doc in requests:
        for rs in request_from(doc).resource_spans:
            resource = attributes_map(rs.resource.attributes, version)
            service = next((as_string(kv.value) for kv in rs.resource.attributes
                            if kv.key == "service.name"), "")
            for ss in rs.scope_spans:
                scope_extra = {}
                if not version.scope_columns:
                    if ss.scope.name:
                        scope_extra["otel.scope.name"] = ss.scope.name
                    if ss.scope.version:
                        scope_extra["otel.scope.version"] = ss.scope.version
                for span in ss.spans:
                    row = {
                        "Timestamp": span.start_time_unix_nano,
                        "TraceId": _hex_or_empty(span.trace_id),
                        "SpanId": _hex_or_empty(span.span_id),
                        "ParentSpanId": _hex_or_empty(span.parent_span_id),
                        "TraceState": span.trace_state,
                        "SpanName": span.name,
                        "SpanKind": version.span_kinds[span.kind],
                        "ServiceName": service,
                        "ResourceAttributes": resource,
                        "ScopeName": ss.scope.name,
                        "ScopeVersion": ss.scope.version,
                        "SpanAttributes": attributes_map(span.attributes, version, scope_extra),
                        "Duration": _duration(span, version),
                        "StatusCode": version.status_codes[span.status.code],
                        "StatusMessage": span.status.message,
                        "Events.Timestamp": [e.time_unix_nano for e in span.events],
                        "Events.Name": [e.name for e in span.events],
                        "Events.Attributes": [attributes_map(e.attributes, version)
                                              for e in span.events],
                        "Links.TraceId": [_hex_or_empty(link.trace_id) for link in span.links],
                        "Links.SpanId": [_hex_or_empty(link.span_id) for link in span.links],
                        "Links.TraceState": [link.trace_state for link in span.links],
                        "Links.Attributes": [attributes_map(link.attributes, version)
                                             for link in span.links],
                    }
                    for name in rows:
                        rows[name].append(row[name])
    types = _columns(version)
    return pa.table({name: pa.array(values, types[name]) for name, values in rows.items()})


def _duration(span: Any, version: ExporterVersion) -> int:
    delta = span.end_time_unix_nano - span.start_time_unix_nano
    return delta % 2**64 if version.scope_columns else delta


def _columns(version: ExporterVersion) -> dict[str, pa.DataType]:
    columns = {
        "Timestamp": _TIME, "TraceId": pa.string(), "SpanId": pa.string(),
        "ParentSpanId": pa.string(), "TraceState": pa.string(), "SpanName": pa.string(),
        "SpanKind": pa.string(), "ServiceName": pa.string(), "ResourceAttributes": _MAP,
        "ScopeName": pa.string(), "ScopeVersion": pa.string(), "SpanAttributes": _MAP,
        "Duration": pa.uint64() if version.scope_columns else pa.int64(),
        "StatusCode": pa.string(), "StatusMessage": pa.string(),
        "Events.Timestamp": pa.list_(_TIME), "Events.Name": pa.list_(pa.string()),
        "Events.Attributes": pa.list_(_MAP),
        "Links.TraceId": pa.list_(pa.string()), "Links.SpanId": pa.list_(pa.string()),
        "Links.TraceState": pa.list_(pa.string()), "Links.Attributes": pa.list_(_MAP),
    }
    if not version.scope_columns:
        del columns["ScopeName"], columns["ScopeVersion"]
    return columns


def create_table(client: Any, database: str, table: str = "otel_traces",
                 version: ExporterVersion = CURRENT) -> None:
    """The exporter's `CREATE DATABASE` and traces table, on a stepscope ClickHouse client."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(ddl(version.ddl, database, table))


def ddl(template: str, database: str, table: str) -> str:
    return template.format(database=database, table=table,
                           resource_items=_ITEMS.format(column="ResourceAttributeItems",
                                                        map="ResourceAttributes"),
                           span_items=_ITEMS.format(column="SpanAttributeItems",
                                                    map="SpanAttributes"))


def write_requests(client: Any, requests: Iterable[ExportTraceServiceRequest | dict],
                   database: str, table: str = "otel_traces",
                   version: ExporterVersion = CURRENT) -> int:
    """Insert the rows of these requests as the exporter does; returns the row count."""
    rows = exporter_rows(requests, version)
    client.insert_arrow(f"{database}.{table}", rows)
    return rows.num_rows
