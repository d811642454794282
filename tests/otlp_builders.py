"""Build real OTLP trace payloads for tests, with the opentelemetry-proto classes.

Everything here produces what an exporter would send or write, in every encoding
stepscope reads, so tests state spans once and check every path:

    spans = [
        span("invoke_agent triage", trace=1, span=1, start_ns=T0, duration_ms=900,
             attributes={"gen_ai.operation.name": "invoke_agent"}),
        span("chat gpt-4o-mini", trace=1, span=2, parent=1, kind=SPAN_KIND_CLIENT,
             attributes={"gen_ai.usage.input_tokens": 120}),
    ]
    req = request(spans, resource={"service.name": "support"})
    to_protobuf(req)          # bytes of an ExportTraceServiceRequest (OTLP/HTTP body)
    to_otlp_json(req)         # OTLP/JSON text: hex ids, integer enums, int64 as strings
    to_generic_json(req)      # protobuf JSON: base64 ids, enum names (optionally snake_case)
    to_json_lines([req, ...]) # the Collector file exporter's default output
    to_length_prefixed([req, ...], zstd_records=True)  # its `format: proto` output

Ids are small integers made into bytes (`trace_id(1)` is 15 zero bytes then 0x01), so
expected values in tests stay readable: `hex_trace(1) == "000...001"`.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import zstandard
from google.protobuf.json_format import MessageToDict, MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

SPAN_KIND_INTERNAL = Span.SPAN_KIND_INTERNAL
SPAN_KIND_SERVER = Span.SPAN_KIND_SERVER
SPAN_KIND_CLIENT = Span.SPAN_KIND_CLIENT
STATUS_UNSET = Status.STATUS_CODE_UNSET
STATUS_OK = Status.STATUS_CODE_OK
STATUS_ERROR = Status.STATUS_CODE_ERROR

# 2026-11-10T09:00:00Z, a fixed instant so expected timestamps are literal.
T0 = 1_794_301_200_000_000_000
DEFAULT_RESOURCE = {"service.name": "support-agent", "service.version": "1.4.2",
                    "deployment.environment.name": "production"}
DEFAULT_SCOPE = ("opentelemetry.instrumentation.openai_v2", "2.4b0")


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def hex_trace(n: int) -> str:
    return trace_id(n).hex()


def hex_span(n: int) -> str:
    return span_id(n).hex()


def any_value(value: Any) -> AnyValue:
    """A Python value as an AnyValue: str, bool, int, float, bytes, list, dict or None."""
    out = AnyValue()
    if value is None:
        return out
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out.kvlist_value.values.add(key=k).value.CopyFrom(any_value(v))
    elif isinstance(value, Sequence):
        for v in value:
            out.array_value.values.add().CopyFrom(any_value(v))
    else:
        raise TypeError(f"no AnyValue for {type(value).__name__}")
    return out


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def event(name: str, time_ns: int, attributes: Mapping[str, Any] | None = None) -> Span.Event:
    return Span.Event(name=name, time_unix_nano=time_ns, attributes=key_values(attributes or {}))


def exception_event(exc_type: str, message: str, time_ns: int) -> Span.Event:
    """The event OTel SDKs record for `span.record_exception(...)`."""
    return event("exception", time_ns, {"exception.type": exc_type,
                                        "exception.message": message,
                                        "exception.stacktrace": "Traceback (most recent call last): ..."})


def span(name: str, *, trace: int | bytes, span: int | bytes, parent: int | bytes | None = None,
         kind: int = SPAN_KIND_INTERNAL, start_ns: int = T0, duration_ms: float = 100.0,
         attributes: Mapping[str, Any] | None = None, events: Iterable[Span.Event] = (),
         status: int = STATUS_UNSET, status_message: str = "") -> Span:
    """One span; integer ids go through `trace_id`/`span_id`, bytes are used as given."""
    out = Span(
        trace_id=trace_id(trace) if isinstance(trace, int) else trace,
        span_id=span_id(span) if isinstance(span, int) else span,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + int(duration_ms * 1_000_000),
        attributes=key_values(attributes or {}),
        events=list(events),
        status=Status(code=status, message=status_message),
    )
    if parent is not None:
        out.parent_span_id = span_id(parent) if isinstance(parent, int) else parent
    return out


def resource_spans(spans: Iterable[Span], resource: Mapping[str, Any] | None = None,
                   scope: tuple[str, str] = DEFAULT_SCOPE) -> ResourceSpans:
    rs = ResourceSpans()
    rs.resource.attributes.extend(key_values(DEFAULT_RESOURCE if resource is None else resource))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope
    ss.spans.extend(spans)
    return rs


def request(spans: Iterable[Span], resource: Mapping[str, Any] | None = None,
            scope: tuple[str, str] = DEFAULT_SCOPE) -> ExportTraceServiceRequest:
    """A request with one resource and one scope; see `request_of` for several."""
    return request_of(resource_spans(spans, resource, scope))


def request_of(*groups: ResourceSpans) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    req.resource_spans.extend(groups)
    return req


# -- encodings ----------------------------------------------------------------------------


def to_protobuf(req: ExportTraceServiceRequest) -> bytes:
    return req.SerializeToString()


def otlp_json_dict(req: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON as the specification writes it: hex ids, integer enums, int64 strings."""
    doc = MessageToDict(req, use_integers_for_enums=True)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(doc)
    return doc


def to_otlp_json(req: ExportTraceServiceRequest, indent: int | None = 2) -> str:
    return json.dumps(otlp_json_dict(req), indent=indent)


def to_generic_json(req: ExportTraceServiceRequest, snake_case: bool = False) -> str:
    """What `google.protobuf.json_format.MessageToJson` writes: base64 ids, enum names."""
    return MessageToJson(req, preserving_proto_field_name=snake_case)


def to_json_lines(reqs: Iterable[ExportTraceServiceRequest]) -> str:
    """The Collector file exporter's default output: one compact request per line."""
    return "".join(to_otlp_json(r, indent=None) + "\n" for r in reqs)


def to_length_prefixed(reqs: Iterable[ExportTraceServiceRequest], zstd_records: bool = False,
                       json_records: bool = False) -> bytes:
    """The file exporter's `format: proto` (or compressed) output: 4-byte big-endian
    length, then the record, each record optionally zstd-compressed on its own."""
    out = bytearray()
    for req in reqs:
        body = to_otlp_json(req, indent=None).encode() if json_records else to_protobuf(req)
        if zstd_records:
            body = zstandard.ZstdCompressor().compress(body)
        out += struct.pack(">I", len(body)) + body
    return bytes(out)


def gzipped(data: bytes | str) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data)


def zstd_compressed(data: bytes | str) -> bytes:
    return zstandard.ZstdCompressor().compress(data.encode() if isinstance(data, str) else data)


# -- a small realistic trace ------------------------------------------------------------------


def agent_trace(n: int, *, start_ns: int = T0, workflow: str = "ticket_triage",
                outcome: str | None = "completed", error: bool = False) -> list[Span]:
    """Trace `n`: a root agent span, an LLM call and a tool call (span ids 10n+1..10n+3)."""
    root, llm, tool = 10 * n + 1, 10 * n + 2, 10 * n + 3
    root_attrs: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent",
                                  "gen_ai.agent.name": workflow, "tenant.id": "acme"}
    if outcome:
        root_attrs["task.outcome"] = outcome
    return [
        span(f"invoke_agent {workflow}", trace=n, span=root, start_ns=start_ns, duration_ms=2500,
             attributes=root_attrs, status=STATUS_ERROR if error else STATUS_UNSET),
        span("chat gpt-4o-mini", trace=n, span=llm, parent=root, kind=SPAN_KIND_CLIENT,
             start_ns=start_ns + 10_000_000, duration_ms=1200,
             attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                         "gen_ai.request.model": "gpt-4o-mini",
                         "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                         "gen_ai.usage.input_tokens": 412, "gen_ai.usage.output_tokens": 57,
                         "gen_ai.response.finish_reasons": ["tool_calls"],
                         "gen_ai.request.temperature": 0.2}),
        span("execute_tool lookup_order", trace=n, span=tool, parent=root,
             start_ns=start_ns + 1_300_000_000, duration_ms=300,
             attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                         "gen_ai.tool.call.id": f"call_{n}"}),
    ]
