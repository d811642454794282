"""Span messages decoded column-wise: every span of a unit walked at once with numpy.

Why? Reading spans through the generated classes costs a Python step per field of every
span (a dozen per span, plus a `bytes` object per attribute), about 4 µs per span before
a single attribute is decoded. Here the protobuf parser only splits the request into
its resources, scopes and the encoded spans; `walk_spans` then reads the fields of all
the spans together, one field of every span per numpy step, and hands the attribute
ranges straight to the bulk `KeyValue` decoder (`wire.decode_key_value_ranges`) without
copying them out.

Only well-formed, ordinary spans are read this way. `walk_spans` returns None for
anything else (a truncated or malformed field, a field number past protobuf's limit, a
field with an unexpected wire type, a trace state that is not UTF-8 or a link that does
not parse, a varint too long for a span kind, a timestamp past 2262), and the caller then
decodes the unit with the generated classes, which give the exact error message or the
exact value; so both ways always agree. Events and statuses other than a bare code are rare enough to
be read one span at a time with the generated classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from stepscope.ingest.wire import MAX_VARINT_BYTES, varints

# Field numbers of opentelemetry.proto.trace.v1.Span and their wire types.
_LEN, _VARINT, _I64, _I32 = 2, 0, 1, 5
TRACE_ID, SPAN_ID, PARENT_SPAN_ID, NAME, KIND = 1, 2, 4, 5, 6
START, END, ATTRIBUTES, EVENTS, STATUS = 7, 8, 9, 11, 15
TRACE_STATE, LINKS = 3, 13      # not read, but checked after the walk as the parser does
# Each field read here, with the wire type it must have. Other fields (trace state,
# dropped counts, links, flags, unknown ones) are skipped, as the parser skips them.
_EXPECTED_WIRE = {TRACE_ID: _LEN, SPAN_ID: _LEN, PARENT_SPAN_ID: _LEN, NAME: _LEN,
                  KIND: _VARINT, START: _I64, END: _I64, ATTRIBUTES: _LEN, EVENTS: _LEN,
                  STATUS: _LEN, TRACE_STATE: _LEN, LINKS: _LEN}
# Fields skipped here that the parser still checks: the dropped counts and flags must
# have their own wire type.
_SKIPPED_WIRE = {10: _VARINT, 12: _VARINT, 14: _VARINT, 16: _I32}
_MAX_FIELD = np.uint64(2**29 - 1)
_INT64_MAX = np.uint64(2**63 - 1)


def _outer_request_class() -> type:
    """ExportTraceServiceRequest down to the scopes, each span left encoded as bytes."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="stepscope_outer_trace.proto",
                                              package="stepscope.outer", syntax="proto3")
    for name, fields in (
        ("ScopeSpans", [(1, "scope", f.TYPE_BYTES, ""), (2, "spans", f.TYPE_BYTES, "")]),
        ("ResourceSpans", [(1, "resource", f.TYPE_BYTES, ""),
                           (2, "scope_spans", f.TYPE_MESSAGE, ".stepscope.outer.ScopeSpans")]),
        ("Request", [(1, "resource_spans", f.TYPE_MESSAGE, ".stepscope.outer.ResourceSpans")]),
    ):
        msg = file.message_type.add(name=name)
        for number, field_name, kind, type_name in fields:
            repeated = field_name in ("spans", "scope_spans", "resource_spans")
            spec = msg.field.add(name=field_name, number=number, type=kind,
                                 label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)
            if type_name:
                spec.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("stepscope.outer.Request"))


OuterRequest = _outer_request_class()


@dataclass
class SpanFields:
    """Where each span's fields are in the buffer (start, length; -1 when absent) and
    the scalar fields' values. Attributes and events are (span, start, end) ranges, in
    span order and, within a span, in the order they were written."""

    trace_id: tuple[np.ndarray, np.ndarray]
    span_id: tuple[np.ndarray, np.ndarray]
    parent_span_id: tuple[np.ndarray, np.ndarray]
    name: tuple[np.ndarray, np.ndarray]
    status: tuple[np.ndarray, np.ndarray]
    kind: np.ndarray            # int32
    start_time_ns: np.ndarray   # int64
    end_time_ns: np.ndarray     # int64
    attributes: tuple[np.ndarray, np.ndarray, np.ndarray]
    events: tuple[np.ndarray, np.ndarray, np.ndarray]


def walk_spans(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> SpanFields | None:
    """Read the fields of the spans encoded at data[starts[i]:ends[i]].

    `data` must be followed by at least 32 zero bytes past the last span (the varint
    reader looks ahead). Returns None when a span is not plain, well-formed protobuf.
    """
    n = len(starts)
    ranges = {field: (np.full(n, -1, np.int64), np.zeros(n, np.int64))
              for field in (TRACE_ID, SPAN_ID, PARENT_SPAN_ID, NAME, STATUS)}
    # Every copy of these is checked after the walk (the parser checks them all).
    unread: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {TRACE_STATE: [], LINKS: []}
    kind = np.zeros(n, np.uint64)
    times = {START: np.zeros(n, np.uint64), END: np.zeros(n, np.uint64)}
    repeated: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {ATTRIBUTES: [], EVENTS: []}
    eight = np.arange(8)

    cursor = starts.astype(np.int64, copy=True)
    rows = np.flatnonzero(cursor < ends)
    while len(rows):
        at = cursor[rows]
        tag, tag_bytes = varints(data, at)
        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
        body = at + tag_bytes
        value, value_bytes = varints(data, body)
        is_len, is_varint = wire == _LEN, wire == _VARINT
        if ((tag_bytes > 5) | (field == 0) | (field > _MAX_FIELD)
                | ((value_bytes >= MAX_VARINT_BYTES) & (is_len | is_varint))).any():
            return None
        size = np.select([is_varint, wire == _I64, is_len, wire == _I32],
                         [value_bytes, np.full(len(rows), 8), value_bytes, np.full(len(rows), 4)],
                         -1)
        if (size < 0).any():  # groups, or wire types that do not exist
            return None
        payload = body + np.where(is_len, value_bytes, 0)
        length = np.where(is_len, value, 0).astype(np.int64)
        following = payload + np.where(is_len, length, size)
        span_end = ends[rows]
        if ((is_len & (value >= np.uint64(2**31))) | (following > span_end)).any():
            return None
        field = field.astype(np.int64)
        for number, expected in _SKIPPED_WIRE.items():
            if (wire[field == number] != expected).any():
                return None
        for number, expected in _EXPECTED_WIRE.items():
            hit = field == number
            if not hit.any():
                continue
            if (wire[hit] != expected).any():
                return None
            which = rows[hit]
            if number in ranges:  # a field given twice: the last one counts
                if number == NAME and (ranges[NAME][0][which] >= 0).any():
                    return None  # the parser checks every copy of a string for UTF-8
                ranges[number][0][which] = payload[hit]
                ranges[number][1][which] = length[hit]
            elif number in unread:
                unread[number].append((payload[hit], length[hit]))
            elif number in repeated:
                repeated[number].append((which, payload[hit], payload[hit] + length[hit]))
            elif number == KIND:
                kind[which] = value[hit]
            else:  # START, END: fixed64, little-endian
                raw = data[body[hit, None] + eight]
                times[number][which] = raw.copy().view("<u8").ravel()
        cursor[rows] = following
        rows = rows[following < span_end]

    if (times[START] > _INT64_MAX).any() or (times[END] > _INT64_MAX).any():
        return None
    if not (all(_valid_utf8(data, *found) for found in unread[TRACE_STATE])
            and all(_valid_links(data, *found) for found in unread[LINKS])):
        return None
    return SpanFields(
        trace_id=ranges[TRACE_ID], span_id=ranges[SPAN_ID], parent_span_id=ranges[PARENT_SPAN_ID],
        name=ranges[NAME], status=ranges[STATUS],
        kind=kind.astype(np.uint32).view(np.int32),
        start_time_ns=times[START].view(np.int64), end_time_ns=times[END].view(np.int64),
        attributes=_in_span_order(repeated[ATTRIBUTES]), events=_in_span_order(repeated[EVENTS]),
    )


def _valid_utf8(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether every string at these ranges is UTF-8, as the parser requires. Only trace
    states come here, which few spans carry."""
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        try:
            data[start:start + length].tobytes().decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _valid_links(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether every link at these ranges parses (links are rare: one at a time)."""
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        try:
            Span.Link.FromString(data[start:start + length].tobytes())
        except DecodeError:
            return False
    return True


def _in_span_order(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(span, start, end) of a repeated field's entries, by span, then as written (the
    walk found them one field of every span at a time)."""
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    spans, starts, ends = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.argsort(spans, kind="stable")
    return spans[order], starts[order], ends[order]
