"""OTLP request bodies at the door: parse, reject invalid spans, and build the answers.

Why validate before acknowledging: the OTLP/HTTP specification lets a server accept part
of a request (`200` with `partial_success.rejected_spans`), and an exporter never resends
what was answered with `200`. So the server decides *here*, synchronously, which spans it
keeps, removes the others from the request, and spools exactly the accepted ones: the
count it reports and what reaches the store then agree by construction.

OTLP/JSON bodies are converted to protobuf here (hex ids to bytes; the spec's JSON
mapping otherwise is protobuf's own), so the spool and the worker deal with one encoding.
Parsing uses the protobuf runtime's C decoder; the per-span check reads three fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF, JSON = "application/x-protobuf", "application/json"
CONTENT_TYPES = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF,
                 "application/json": JSON}
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
MAX_TIME_NS = 2**63 - 1  # timestamps are stored as signed 64-bit nanoseconds
_TIME_PROBLEM = "timestamp is beyond the year 2262 (not nanoseconds since the epoch?)"
_INVALID_ID = base64.b64encode(b"\x00").decode()  # one byte: fails every length check


class MalformedBody(ValueError):
    """The body is not the OTLP request it claims to be: HTTP 400."""


@dataclass(frozen=True)
class Accepted:
    """What the server keeps from one request, and what it tells the client."""

    payload: bytes          # protobuf request holding only the accepted items
    accepted: int           # spans (or log records) kept
    rejected: int           # spans (or log records) dropped as invalid
    reason: str             # why, for partial_success.error_message ("" when none)


def media_type(header: str | None) -> str | None:
    """The canonical OTLP media type of a Content-Type header, or None when unsupported."""
    if not header:
        return None
    return CONTENT_TYPES.get(header.split(";", 1)[0].strip().lower())


# -- traces -------------------------------------------------------------------------------


def accept_traces(body: bytes, content_type: str) -> Accepted:
    """Parse an ExportTraceServiceRequest and drop the spans that cannot be stored."""
    request = ExportTraceServiceRequest()
    _parse(request, body, content_type, _fix_trace_json)
    total = rejected = 0
    reasons: dict[str, int] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            bad = []
            for index, span in enumerate(spans):
                problem = _span_problem(span.trace_id, span.span_id, span.parent_span_id) or (
                    _TIME_PROBLEM if max(span.start_time_unix_nano, span.end_time_unix_nano)
                    > MAX_TIME_NS else None)
                if problem:
                    bad.append(index)
                    reasons[problem] = reasons.get(problem, 0) + 1
            total += len(spans)
            for index in reversed(bad):
                del spans[index]
            rejected += len(bad)
    payload = request.SerializeToString() if rejected or content_type == JSON else body
    return Accepted(payload, total - rejected, rejected, _describe(reasons, "span"))


def _span_problem(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str | None:
    if len(trace_id) != TRACE_ID_BYTES or not any(trace_id):
        return "trace id is not 16 bytes (32 hex digits) or is all zero"
    if len(span_id) != SPAN_ID_BYTES or not any(span_id):
        return "span id is not 8 bytes (16 hex digits) or is all zero"
    if parent_span_id and len(parent_span_id) != SPAN_ID_BYTES:
        return "parent span id is not 8 bytes (16 hex digits)"
    return None


def trace_response(accepted: Accepted, content_type: str) -> bytes:
    response = ExportTraceServiceResponse()
    if accepted.rejected:
        response.partial_success.CopyFrom(ExportTracePartialSuccess(
            rejected_spans=accepted.rejected, error_message=accepted.reason))
    return _encode(response, content_type)


# -- logs ---------------------------------------------------------------------------------


def accept_logs(body: bytes, content_type: str) -> Accepted:
    """Parse an ExportLogsServiceRequest and drop the records with malformed ids."""
    request = ExportLogsServiceRequest()
    _parse(request, body, content_type, _fix_logs_json)
    total = rejected = 0
    reasons: dict[str, int] = {}
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            bad = []
            for index, record in enumerate(records):
                problem = None
                if record.trace_id and len(record.trace_id) != TRACE_ID_BYTES:
                    problem = "trace id is not 16 bytes (32 hex digits)"
                elif record.span_id and len(record.span_id) != SPAN_ID_BYTES:
                    problem = "span id is not 8 bytes (16 hex digits)"
                if problem:
                    bad.append(index)
                    reasons[problem] = reasons.get(problem, 0) + 1
            total += len(records)
            for index in reversed(bad):
                del records[index]
            rejected += len(bad)
    payload = request.SerializeToString() if rejected or content_type == JSON else body
    return Accepted(payload, total - rejected, rejected, _describe(reasons, "log record"))


def logs_response(accepted: Accepted, content_type: str) -> bytes:
    response = ExportLogsServiceResponse()
    if accepted.rejected:
        response.partial_success.CopyFrom(ExportLogsPartialSuccess(
            rejected_log_records=accepted.rejected, error_message=accepted.reason))
    return _encode(response, content_type)


# -- failures: google.rpc.Status ------------------------------------------------------------

#: gRPC status codes for the HTTP failures (the spec lets clients ignore them; logs use them).
GRPC_CODE_FOR_HTTP = {400: 3, 401: 16, 404: 12, 405: 12, 411: 3, 413: 8, 415: 3,
                      429: 8, 500: 13, 503: 14}


def status_body(http_status: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status in the request's encoding, as OTLP/HTTP failures carry.

    Encoded by hand (two fields) to avoid a dependency on googleapis-common-protos.
    """
    code = GRPC_CODE_FOR_HTTP.get(http_status, 2)
    if content_type == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# -- parsing ------------------------------------------------------------------------------


def _parse(message: Any, body: bytes, content_type: str, fix_json: Any) -> None:
    name = type(message).__name__
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise MalformedBody(f"body is not a protobuf {name}: {exc}") from None
        return
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise MalformedBody("body is not UTF-8 text") from None
    except ValueError as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedBody(f"body is JSON but not an object (an OTLP/JSON {name})")
    try:
        fix_json(document)
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedBody(f"body is not an OTLP/JSON {name}: {exc}") from None


def _fix_trace_json(document: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON mapping wants base64. Convert in place."""
    for resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                _fix_ids(span)
                for link in _items(span, "links"):
                    _fix_ids(link)


def _fix_logs_json(document: dict[str, Any]) -> None:
    for resource_logs in _items(document, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                _fix_ids(record)


_ID_KEYS = {"traceId": TRACE_ID_BYTES, "trace_id": TRACE_ID_BYTES,
            "spanId": SPAN_ID_BYTES, "span_id": SPAN_ID_BYTES,
            "parentSpanId": SPAN_ID_BYTES, "parent_span_id": SPAN_ID_BYTES}


def _fix_ids(item: Any) -> None:
    if not isinstance(item, dict):
        raise MalformedBody("a span, link or log record is not a JSON object")
    for key, size in _ID_KEYS.items():
        value = item.get(key)
        if value is None or value == "":
            continue
        item[key] = _id_as_base64(value, size)


def _id_as_base64(value: Any, size: int) -> str:
    """Hex (the OTLP/JSON rule) or base64 (generic protobuf JSON) id, as base64."""
    if not isinstance(value, str):
        return _INVALID_ID
    if len(value) == 2 * size:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return _INVALID_ID
    return value if len(raw) == size else _INVALID_ID


def _items(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise MalformedBody("expected a JSON object in the OTLP request")
    for key in keys:
        if key in parent:
            value = parent[key]
            if value is None:
                return []
            if not isinstance(value, list):
                raise MalformedBody(f"{key!r} must be a JSON array")
            return value
    return []


def _describe(reasons: dict[str, int], noun: str) -> str:
    if not reasons:
        return ""
    parts = [f"{count} {noun}{'s' if count != 1 else ''}: {why}" for why, count in reasons.items()]
    return "rejected " + "; ".join(parts)


def _encode(message: Any, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()
