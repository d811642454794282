"""Decode OTLP trace files into plain span records, for tests that check generated data.

Uses only opentelemetry-proto, gzip/zstandard and json — deliberately none of
stepscope's own ingest or analytics code, so a test built on it is an independent check.
Handles what the sample generator writes: length-prefixed `ExportTraceServiceRequest`
records (the Collector file exporter's `format: proto`) in a zstd stream, and OTLP/JSON
Lines in gzip.
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    file: str = ""
    request: int = 0


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    return data


def _proto_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def _json_value(value: dict[str, Any]) -> Any:
    (which, inner), = value.items()
    if which == "intValue":
        return int(inner)
    if which == "arrayValue":
        return [_json_value(v) for v in inner.get("values", [])]
    return inner


def requests(path: Path) -> list[Any]:
    """The export requests in one file: protobuf messages or parsed JSON objects."""
    data = raw_bytes(path)
    if data[:1] == b"{":
        return [json.loads(line) for line in data.splitlines() if line.strip()]
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(ExportTraceServiceRequest.FromString(data[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out


def read_spans(path: Path) -> list[Span]:
    spans: list[Span] = []
    for number, req in enumerate(requests(path)):
        if isinstance(req, dict):
            spans += _json_spans(req, str(path), number)
        else:
            spans += _proto_spans(req, str(path), number)
    return spans


def _proto_spans(req: ExportTraceServiceRequest, file: str, number: int) -> list[Span]:
    out = []
    for rs in req.resource_spans:
        resource = {kv.key: _proto_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(
                    s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None, s.name,
                    s.kind, s.start_time_unix_nano, s.end_time_unix_nano, s.status.code,
                    s.status.message, {kv.key: _proto_value(kv.value) for kv in s.attributes},
                    resource, ss.scope.name,
                    [(e.name, e.time_unix_nano, {kv.key: _proto_value(kv.value)
                                                 for kv in e.attributes}) for e in s.events],
                    file, number))
    return out


def _json_spans(req: dict[str, Any], file: str, number: int) -> list[Span]:
    out = []
    for rs in req["resourceSpans"]:
        resource = {a["key"]: _json_value(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                status = s.get("status", {})
                out.append(Span(
                    s["traceId"], s["spanId"], s.get("parentSpanId") or None, s["name"],
                    s["kind"], int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]),
                    status.get("code", 0), status.get("message", ""),
                    {a["key"]: _json_value(a["value"]) for a in s.get("attributes", [])},
                    resource, ss["scope"]["name"],
                    [(e["name"], int(e["timeUnixNano"]),
                      {a["key"]: _json_value(a["value"]) for a in e.get("attributes", [])})
                     for e in s.get("events", [])],
                    file, number))
    return out


def read_dir(directory: Path) -> list[Span]:
    """Every span of every trace file under `directory` (sorted by path)."""
    spans: list[Span] = []
    for path in sorted(directory.rglob("traces-*")):
        spans += read_spans(path)
    return spans
