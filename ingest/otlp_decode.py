"""OTLP trace requests (protobuf or JSON) to the raw spans table, doing as little per span as possible.

Protobuf is read column-wise: the generated classes split a request into resources,
scopes and encoded spans, and `proto_spans` reads the fields of all the spans at once
with numpy. Ids are hex-encoded for the whole batch at once; attributes are parsed
column-wise from their raw encodings (`wire.decode_key_value_ranges`); events and
statuses with a message, which most spans lack, are the only things decoded one span at
a time. A unit that is not plain, well-formed OTLP is read again the slow way, a dozen
fields per span copied into lists in Python (`RawColumns.add_proto`), which names the
problem exactly. The result follows `raw_schema.RAW_SPAN_SCHEMA`.

OTLP/JSON documents are walked by `otlp_json` into the same columns, so both encodings
give identical rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from stepscope.ingest import otlp_json
from stepscope.ingest.proto_spans import OuterRequest, walk_spans
from stepscope.ingest.raw_schema import RAW_SPAN_SCHEMA
from stepscope.ingest.span_events import (
    CONTENT,
    EXCEPTION,
    EXCEPTION_MESSAGE_KEY,
    EXCEPTION_TYPE_KEY,
    FIRST_TOKEN,
    content_key,
    event_role,
)
from stepscope.ingest.units import OtlpError, Unit
from stepscope.ingest.wire import (
    PAD,
    WireError,
    any_value_text,
    binary_view,
    decode_key_value_ranges,
    decode_key_values,
)

TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8

_FAST_STATUS: dict[bytes, tuple[int, None]] = {b"": (0, None), b"\x18\x01": (1, None),
                                                b"\x18\x02": (2, None)}
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint8).reshape(256, 2)


# -- the lightweight protobuf view -------------------------------------------------------


def _lite_request_class() -> type:
    """ExportTraceServiceRequest, wire-compatible, but with sub-messages left as bytes.

    Attributes, events, status, resource and scope stay encoded so that the hot loop
    never creates a wrapper object per attribute; they are parsed column-wise (attributes)
    or only when present (events, non-trivial statuses).
    """
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="stepscope_lite_trace.proto",
                                              package="stepscope.lite", syntax="proto3")

    def message(name: str, fields: Iterable[tuple[int, str, int, bool, str]]) -> None:
        msg = file.message_type.add(name=name)
        for number, field_name, kind, repeated, type_name in fields:
            spec = msg.field.add(name=field_name, number=number, type=kind,
                                 label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)
            if type_name:
                spec.type_name = type_name

    message("Span", [
        (1, "trace_id", f.TYPE_BYTES, False, ""), (2, "span_id", f.TYPE_BYTES, False, ""),
        (4, "parent_span_id", f.TYPE_BYTES, False, ""), (5, "name", f.TYPE_STRING, False, ""),
        (6, "kind", f.TYPE_INT32, False, ""),
        (7, "start_time_unix_nano", f.TYPE_FIXED64, False, ""),
        (8, "end_time_unix_nano", f.TYPE_FIXED64, False, ""),
        (9, "attributes", f.TYPE_BYTES, True, ""), (11, "events", f.TYPE_BYTES, True, ""),
        (15, "status", f.TYPE_BYTES, False, ""),
    ])
    message("ScopeSpans", [(1, "scope", f.TYPE_BYTES, False, ""),
                           (2, "spans", f.TYPE_MESSAGE, True, ".stepscope.lite.Span")])
    message("ResourceSpans", [(1, "resource", f.TYPE_BYTES, False, ""),
                              (2, "scope_spans", f.TYPE_MESSAGE, True, ".stepscope.lite.ScopeSpans")])
    message("Request", [(1, "resource_spans", f.TYPE_MESSAGE, True, ".stepscope.lite.ResourceSpans")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("stepscope.lite.Request"))


LiteRequest = _lite_request_class()


# -- column builder -----------------------------------------------------------------------


class RawColumns:
    """The raw spans of one unit as Python lists, turned into Arrow in one go."""

    _LISTS = ("trace_ids", "span_ids", "parent_ids", "starts", "ends", "names", "kinds",
              "status_codes", "status_messages", "attr_offsets", "attr_encoded",
              "attr_keys", "attr_values", "group_of_span", "groups", "batches",
              "event_spans", "event_counts", "event_names", "exceptions", "first_tokens",
              "event_attr_spans", "event_attr_counts", "event_attr_keys", "event_attr_values")

    def __init__(self, source: str):
        self.source = source
        for name in self._LISTS:
            setattr(self, name, [])
        self.attr_offsets.append(0)

    def mark(self) -> tuple[int, ...]:
        return tuple(len(getattr(self, name)) for name in self._LISTS)

    def rollback(self, mark: tuple[int, ...]) -> None:
        for name, n in zip(self._LISTS, mark, strict=True):
            del getattr(self, name)[n:]

    # -- protobuf ---------------------------------------------------------------------

    def add_proto(self, payload: bytes, batch: int) -> None:
        try:
            request = LiteRequest.FromString(payload)
        except DecodeError:
            raise OtlpError(other_signal(payload) or
                            "corrupt or truncated protobuf: not a valid ExportTraceServiceRequest"
                            ) from None
        trace_ids, span_ids, parent_ids = self.trace_ids, self.span_ids, self.parent_ids
        names, kinds, starts, ends = self.names, self.kinds, self.starts, self.ends
        codes, messages = self.status_codes, self.status_messages
        attr_extend, offsets_append = self.attr_encoded.extend, self.attr_offsets.append
        attr_encoded = self.attr_encoded
        fast_status = _FAST_STATUS
        for rs in request.resource_spans:
            resource_keys, resource_values = _resource_attributes(rs.resource)
            for ss in rs.scope_spans:
                scope_name, scope_version = _scope(ss.scope)
                group = len(self.groups)
                self.groups.append((resource_keys, resource_values, scope_name, scope_version))
                first = len(trace_ids)
                for span in ss.spans:
                    tid, sid, pid = span.trace_id, span.span_id, span.parent_span_id
                    if len(tid) != 16 or len(sid) != 8 or (pid and len(pid) != 8):
                        raise OtlpError(other_signal(payload) or _bad_ids(span.name, tid, sid, pid))
                    trace_ids.append(tid)
                    span_ids.append(sid)
                    parent_ids.append(pid)
                    names.append(span.name)
                    kinds.append(span.kind)
                    starts.append(span.start_time_unix_nano)
                    ends.append(span.end_time_unix_nano)
                    status = span.status
                    code, message = fast_status.get(status) or _status(status)
                    codes.append(code)
                    messages.append(message)
                    attr_extend(span.attributes)
                    offsets_append(len(attr_encoded))
                    if span.events:
                        self.add_events(len(trace_ids) - 1, _proto_events(span.events))
                count = len(trace_ids) - first
                self.group_of_span.append((group, count))
                self.batches.append((batch, count))

    # -- OTLP/JSON --------------------------------------------------------------------

    def add_json(self, doc: Any, batch: int) -> None:
        otlp_json.add_request(self, doc, batch)

    # -- events -----------------------------------------------------------------------

    def add_events(self, index: int,
                    events: Iterable[tuple[str, int, list[tuple[str, str | None]]]]) -> None:
        names: list[str] = []
        content_keys: list[str] = []
        content_values: list[str | None] = []
        exception: tuple[str | None, str | None] | None = None
        first_token: int | None = None
        for name, time_ns, attributes in events:
            names.append(name)
            role = event_role(name)
            if role == EXCEPTION:
                if exception is None:
                    found = dict(attributes)
                    exception = (found.get(EXCEPTION_TYPE_KEY), found.get(EXCEPTION_MESSAGE_KEY))
            elif role == FIRST_TOKEN:
                if first_token is None or time_ns < first_token:
                    first_token = time_ns
            elif role == CONTENT:
                for key, value in attributes:
                    content_keys.append(content_key(name, key))
                    content_values.append(value)
        self.event_spans.append(index)
        self.event_counts.append(len(names))
        self.event_names.extend(names)
        if exception is not None:
            self.exceptions.append((index, *exception))
        if first_token is not None:
            self.first_tokens.append((index, first_token))
        if content_keys:
            self.event_attr_spans.append(index)
            self.event_attr_counts.append(len(content_keys))
            self.event_attr_keys.extend(content_keys)
            self.event_attr_values.extend(content_values)

    # -- Arrow --------------------------------------------------------------------------

    def table(self) -> pa.Table:
        """The raw spans table (RAW_SPAN_SCHEMA). Raises OtlpError for undecodable values."""
        n = len(self.trace_ids)
        try:
            starts = pa.array(self.starts, pa.int64())
            ends = pa.array(self.ends, pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            raise OtlpError("a span timestamp is beyond the year 2262 (not nanoseconds?)") from None
        offsets = pa.array(self.attr_offsets, pa.int32())
        if self.attr_encoded:
            try:
                keys, values = decode_key_values(self.attr_encoded)
            except WireError as exc:
                raise OtlpError(f"corrupt protobuf: {exc}") from None
        else:
            keys = pa.array(self.attr_keys, pa.string())
            values = pa.array(self.attr_values, pa.string())
        return self.assemble(n, {
            "trace_id": _hex_ids(self.trace_ids, TRACE_ID_BYTES, self.names, "trace"),
            "span_id": _hex_ids(self.span_ids, SPAN_ID_BYTES, self.names, "span"),
            "parent_span_id": _hex_ids(self.parent_ids, SPAN_ID_BYTES, self.names, None),
            "start_time_ns": starts,
            "end_time_ns": ends,
            "name": pa.array(self.names, pa.string()),
            "span_kind": pa.array(self.kinds, pa.int32()),
            "status_code": pa.array(self.status_codes, pa.int32()),
            "status_message": pa.array(self.status_messages, pa.string()),
            "attr_keys": pa.ListArray.from_arrays(offsets, keys),
            "attr_values": pa.ListArray.from_arrays(offsets, values),
        })

    def assemble(self, n: int, spans: dict[str, pa.Array]) -> pa.Table:
        """The raw spans table from the span columns given and what this object holds
        besides: resources and scopes, events, sources and batches."""
        group_index = _repeat(self.group_of_span, n)
        groups = self.groups
        exception_type: list[str | None] = [None] * n
        exception_message: list[str | None] = [None] * n
        for i, etype, emessage in self.exceptions:
            exception_type[i], exception_message[i] = etype, emessage
        first_token: list[int | None] = [None] * n
        for i, t in self.first_tokens:
            first_token[i] = t
        columns = {
            **spans,
            "resource_keys": pa.array([g[0] for g in groups], pa.list_(pa.string())).take(group_index),
            "resource_values": pa.array([g[1] for g in groups], pa.list_(pa.string())).take(group_index),
            "scope_name": pa.array([g[2] for g in groups], pa.string()).take(group_index),
            "scope_version": pa.array([g[3] for g in groups], pa.string()).take(group_index),
            "event_names": _sparse_lists(self.event_spans, self.event_counts, self.event_names, n),
            "exception_type": pa.array(exception_type, pa.string()),
            "exception_message": pa.array(exception_message, pa.string()),
            "first_token_ns": pa.array(first_token, pa.int64()),
            "event_attr_keys": _sparse_lists(self.event_attr_spans, self.event_attr_counts,
                                             self.event_attr_keys, n),
            "event_attr_values": _sparse_lists(self.event_attr_spans, self.event_attr_counts,
                                               self.event_attr_values, n),
            "source_file": pa.array([self.source] * n, pa.string()) if n else pa.array([], pa.string()),
            "source_batch": pa.array(_repeat(self.batches, n), pa.int32()),
        }
        return pa.Table.from_arrays([columns[f.name] for f in RAW_SPAN_SCHEMA], schema=RAW_SPAN_SCHEMA)


def decode_unit(unit: Unit, *, columnwise: bool = True) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The raw spans of a unit, and the records rejected on their own (JSON Lines).

    Raises OtlpError when a record is bad and the unit's records are not independent.
    Protobuf is read column-wise when it can be (`columnwise=False` reads every span with
    the generated classes, which gives the same table, only slower).
    """
    if unit.kind == "proto" and columnwise:
        decoded = _decode_proto_columnwise(unit)
        if decoded is not None:
            return decoded, sorted(unit.errors)
    columns = RawColumns(unit.source)
    rejected = list(unit.errors)
    for batch, payload in unit.payloads():
        mark = columns.mark()
        try:
            if unit.kind == "proto":
                columns.add_proto(payload, batch)
            else:
                columns.add_json(otlp_json.parse_json(payload, one_line=unit.label == "line"), batch)
        except OtlpError as exc:
            if not unit.independent:
                raise OtlpError(f"{unit.label} {batch}: {exc}" if unit.label != "request"
                                else str(exc)) from None
            columns.rollback(mark)
            rejected.append((batch, str(exc)))
    return columns.table(), sorted(rejected)


def _decode_proto_columnwise(unit: Unit) -> pa.Table | None:
    """The raw spans of a protobuf unit, read column-wise (`proto_spans`); None when any
    part of it is not plain, well-formed OTLP, for `decode_unit` to read it the slow way,
    which names the problem exactly (or reads what is unusual but valid)."""
    columns = RawColumns(unit.source)
    encoded: list[bytes] = []
    try:
        for batch, payload in unit.payloads():
            request = OuterRequest.FromString(payload)
            for rs in request.resource_spans:
                resource_keys, resource_values = _resource_attributes(rs.resource)
                for ss in rs.scope_spans:
                    scope_name, scope_version = _scope(ss.scope)
                    columns.group_of_span.append((len(columns.groups), len(ss.spans)))
                    columns.batches.append((batch, len(ss.spans)))
                    columns.groups.append((resource_keys, resource_values, scope_name, scope_version))
                    encoded.extend(ss.spans)
    except (DecodeError, OtlpError):
        return None
    n = len(encoded)
    if n == 0:
        return None
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, n), out=offsets[1:])
    encoded.append(bytes(PAD))
    data = np.frombuffer(b"".join(encoded), np.uint8)  # read-only: nothing writes to it
    del encoded
    fields = walk_spans(data, offsets[:-1], offsets[1:])
    if fields is None:
        return None
    trace_len, span_len, parent_len = (fields.trace_id[1], fields.span_id[1], fields.parent_span_id[1])
    if ((trace_len != TRACE_ID_BYTES) | (span_len != SPAN_ID_BYTES)
            | ((parent_len != 0) & (parent_len != SPAN_ID_BYTES))).any():
        return None
    names = _text_at(data, *fields.name)
    if names is None:
        return None
    span_of, attr_start, attr_end = fields.attributes
    try:
        codes, messages = _statuses(data, *fields.status)
        keys, values = decode_key_value_ranges(data, attr_start, attr_end)
        if len(fields.events[0]):
            _add_events(columns, data, *fields.events)
    except (WireError, OtlpError):
        return None
    attr_offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(span_of, minlength=n), out=attr_offsets[1:])

    def name_of(i: int) -> str:
        return names[i].as_py()

    offsets_array = pa.array(attr_offsets)
    return columns.assemble(n, {
        "trace_id": _hex_columns(_id_bytes(data, fields.trace_id, TRACE_ID_BYTES), name_of, "trace"),
        "span_id": _hex_columns(_id_bytes(data, fields.span_id, SPAN_ID_BYTES), name_of, "span"),
        "parent_span_id": _hex_columns(_id_bytes(data, fields.parent_span_id, SPAN_ID_BYTES),
                                       name_of, None),
        "start_time_ns": pa.array(fields.start_time_ns),
        "end_time_ns": pa.array(fields.end_time_ns),
        "name": names,
        "span_kind": pa.array(fields.kind),
        "status_code": pa.array(codes),
        "status_message": pa.array(messages, pa.string()),
        "attr_keys": pa.ListArray.from_arrays(offsets_array, keys),
        "attr_values": pa.ListArray.from_arrays(offsets_array, values),
    })


def _text_at(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array | None:
    """Strings at data[start:start + length] (empty where absent); None if one is not UTF-8."""
    starts = np.where(starts < 0, 0, starts)
    view = binary_view([data], np.zeros(len(starts), np.int32), starts, lengths, None)
    try:
        return view.cast(pa.string())
    except pa.ArrowInvalid:
        return None


def _id_bytes(data: np.ndarray, where: tuple[np.ndarray, np.ndarray], width: int) -> np.ndarray:
    """Each span's id as a row of `width` bytes; zeros where the id is absent."""
    starts, lengths = where
    raw = data[np.where(starts < 0, 0, starts)[:, None] + np.arange(width)]
    raw[lengths == 0] = 0
    return raw


def _statuses(data: np.ndarray, starts: np.ndarray,
              lengths: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """Status codes and messages: a bare code (the usual status) read column-wise, any
    other status with the generated class."""
    n = len(starts)
    codes = np.zeros(n, np.int32)
    messages: list[str | None] = [None] * n
    at = np.where(starts < 0, 0, starts)
    bare = (lengths == 2) & (data[at] == 0x18) & ((data[at + 1] == 1) | (data[at + 1] == 2))
    codes[bare] = data[at[bare] + 1]
    for i in np.flatnonzero((lengths > 0) & ~bare).tolist():
        codes[i], messages[i] = _status(data[at[i]:at[i] + lengths[i]].tobytes())
    return codes, messages


def _add_events(columns: RawColumns, data: np.ndarray, spans: np.ndarray, starts: np.ndarray,
                ends: np.ndarray) -> None:
    bounds = np.flatnonzero(np.diff(spans)) + 1
    for group in np.split(np.arange(len(spans)), bounds):
        encoded = [data[starts[i]:ends[i]].tobytes() for i in group.tolist()]
        columns.add_events(int(spans[group[0]]), _proto_events(encoded))


# -- protobuf helpers -------------------------------------------------------------------------


def _resource_attributes(encoded: bytes) -> tuple[list[str], list[str | None]]:
    if not encoded:
        return [], []
    try:
        resource = Resource.FromString(encoded)
    except DecodeError:
        raise OtlpError("corrupt protobuf: a resource is not valid") from None
    return [kv.key for kv in resource.attributes], [any_value_text(kv.value) for kv in resource.attributes]


def _scope(encoded: bytes) -> tuple[str | None, str | None]:
    if not encoded:
        return None, None
    try:
        scope = InstrumentationScope.FromString(encoded)
    except DecodeError:
        raise OtlpError("corrupt protobuf: an instrumentation scope is not valid") from None
    return scope.name or None, scope.version or None


def _status(encoded: bytes) -> tuple[int, str | None]:
    try:
        status = Status.FromString(encoded)
    except DecodeError:
        raise OtlpError("corrupt protobuf: a span status is not valid") from None
    return status.code, status.message or None


def _proto_events(encoded: Iterable[bytes]) -> Iterable[tuple[str, int, list[tuple[str, str | None]]]]:
    for raw in encoded:
        try:
            event = Span.Event.FromString(raw)
        except DecodeError:
            raise OtlpError("corrupt protobuf: a span event is not valid") from None
        yield event.name, event.time_unix_nano, [
            (kv.key, any_value_text(kv.value)) for kv in event.attributes
        ]


def other_signal(payload: bytes) -> str | None:
    """Why a protobuf that is not a trace request may be an OTLP logs or metrics export."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    for kind, cls, looks_right in (
        ("logs", ExportLogsServiceRequest,
         lambda r: any(lr.time_unix_nano or lr.observed_time_unix_nano or lr.HasField("body")
                       for rl in r.resource_logs for sl in rl.scope_logs for lr in sl.log_records)),
        ("metrics", ExportMetricsServiceRequest,
         lambda r: any(m.name and m.WhichOneof("data")
                       for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)),
    ):
        try:
            if looks_right(cls.FromString(payload)):
                return (f"not OTLP traces: this protobuf is an OTLP {kind} export "
                        f"(Export{kind.title()}ServiceRequest); send traces")
        except DecodeError:
            continue
    return None


def _bad_ids(name: str, tid: bytes, sid: bytes, pid: bytes) -> str:
    for label, value, expected in (("trace id", tid, 16), ("span id", sid, 8), ("parent span id", pid, 8)):
        if len(value) != expected:
            return f"span {name!r}: {label} has {len(value)} bytes, expected {expected}"
    return f"span {name!r}: bad ids"


# -- Arrow helpers ------------------------------------------------------------------------


def _hex_ids(ids: list[bytes], width: int, names: list[str], kind: str | None) -> pa.Array:
    """Lower-case hex for a batch of ids. Empty or all-zero parents become null; an
    all-zero trace or span id (invalid in OTLP) is an error naming the span."""
    if kind is None:
        zero = bytes(width)
        joined = b"".join([i or zero for i in ids])
    else:
        joined = b"".join(ids)
    raw = np.frombuffer(joined, np.uint8).reshape(len(ids), width)
    return _hex_columns(raw, names.__getitem__, kind)


def _hex_columns(raw: np.ndarray, name_of: Callable[[int], str], kind: str | None) -> pa.Array:
    """Lower-case hex for ids given as rows of bytes (see `_hex_ids`)."""
    n, width = raw.shape
    valid = raw.any(axis=1)
    if kind is not None and not valid.all():
        i = int(np.flatnonzero(~valid)[0])
        raise OtlpError(f"span {name_of(i)!r}: {kind} id is all zeros, which OTLP defines as invalid")
    text = _HEX[raw].reshape(-1)
    offsets = np.arange(0, (n + 1) * 2 * width, 2 * width, dtype=np.int32)
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(text)])


def _repeat(runs: list[tuple[int, int]], n: int) -> np.ndarray:
    if not runs:
        return np.zeros(n, np.int64)
    values, counts = zip(*runs, strict=True)
    return np.repeat(np.array(values, np.int64), np.array(counts, np.int64))


def _sparse_lists(spans: list[int], counts: list[int], flat: list, n: int) -> pa.Array:
    """A list column for n spans where only `spans` have items (`counts` each)."""
    sizes = np.zeros(n, np.int32)
    if spans:
        sizes[np.array(spans)] = counts
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.string()))


