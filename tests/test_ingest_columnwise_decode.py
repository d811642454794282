"""Protobuf read column-wise gives exactly what the generated classes give.

`otlp_decode` reads spans with numpy (`proto_spans.walk_spans`) and falls back to the
generated classes for anything unusual. These tests encode spans of every shape the
wire format allows (unknown and repeated fields, events, statuses with messages, links,
odd kinds, ids of the wrong length, truncations) and check that both ways give the
same raw spans table, or the same error.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from otlp_builders import T0, event, exception_event, key_values

from stepscope.ingest.otlp_decode import _decode_proto_columnwise, decode_unit
from stepscope.ingest.proto_spans import walk_spans
from stepscope.ingest.units import OtlpError, Unit
from stepscope.ingest.wire import PAD, length_delimited

attribute_values = st.one_of(
    st.text(max_size=30), st.text(min_size=100, max_size=300), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=False),
    st.binary(max_size=8), st.none(), st.lists(st.integers(-5, 5), max_size=3))
attributes = st.dictionaries(st.text(max_size=20), attribute_values, max_size=12)
events = st.lists(st.one_of(
    st.builds(exception_event, st.text(max_size=10), st.text(max_size=20), st.integers(0, 2**62)),
    st.builds(event, st.sampled_from(["gen_ai.user.message", "gen_ai.choice", "ai.stream.firstChunk",
                                      "something"]),
              st.integers(0, 2**62), st.dictionaries(st.text(max_size=8), st.text(max_size=20),
                                                     max_size=3)),
), max_size=3)
# Raw fields a writer may add to a span: trace state, dropped counts, links, flags, and
# fields this version of OTLP does not define (every wire type).
extra_fields = st.lists(st.sampled_from([
    length_delimited(3, b"vendor=1"), b"\x50\x03", b"\x60\x01", b"\x70\x02", b"\x85\x01\x01\x00\x00\x00",
    length_delimited(13, b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9))),
    b"\xa0\x06\x2a", b"\xa9\x06" + bytes(8), length_delimited(101, b"unknown"), b"\xad\x06" + bytes(4),
]), max_size=3)


@st.composite
def spans(draw: st.DrawFn) -> bytes:
    out = Span(
        trace_id=draw(st.binary(min_size=16, max_size=16).filter(any)),
        span_id=draw(st.binary(min_size=8, max_size=8).filter(any)),
        parent_span_id=draw(st.sampled_from([b"", bytes(8), b"\x00" * 7 + b"\x05"])),
        name=draw(st.text(max_size=30)),
        kind=draw(st.sampled_from([0, 1, 2, 3, 4, 5, 9])),
        start_time_unix_nano=draw(st.integers(0, 2**63 - 1)),
        end_time_unix_nano=T0,
        attributes=key_values(draw(attributes)),
        events=draw(events),
    )
    status = draw(st.sampled_from([None, (0, ""), (1, ""), (2, ""), (2, "upstream returned 503"),
                                   (0, "just a message")]))
    if status is not None:
        out.status.CopyFrom(Status(code=status[0], message=status[1]))
    encoded = out.SerializeToString() + b"".join(draw(extra_fields))
    if draw(st.booleans()):  # a field given twice: the last one counts
        encoded += length_delimited(2, draw(st.binary(min_size=8, max_size=8).filter(any)))
    return encoded


def payload(groups: list[list[bytes]]) -> bytes:
    """A request whose resource/scope groups hold the spans given, already encoded."""
    request = ExportTraceServiceRequest()
    for i, _ in enumerate(groups):
        rs = ResourceSpans()
        rs.resource.attributes.extend(key_values({"service.name": f"svc-{i}"}))
        ss = rs.scope_spans.add()
        ss.scope.name = f"scope-{i}"
        request.resource_spans.append(rs)
    out = bytearray()
    for rs, encoded in zip(request.resource_spans, groups, strict=True):
        body = bytearray(length_delimited(1, rs.resource.SerializeToString()))
        scope = bytearray(length_delimited(1, rs.scope_spans[0].scope.SerializeToString()))
        for span_bytes in encoded:
            scope += length_delimited(2, span_bytes)
        body += length_delimited(2, bytes(scope))
        out += length_delimited(1, bytes(body))
    return bytes(out)


def both_ways(*payloads: bytes) -> tuple[object, object]:
    """(column-wise result, generated-classes result); each a table or an error message."""
    unit = Unit("proto", "test.pb", records=list(enumerate(payloads, start=1)), label="record")
    results = []
    for columnwise in (True, False):
        try:
            results.append(decode_unit(unit, columnwise=columnwise)[0])
        except OtlpError as exc:
            results.append(str(exc))
    return results[0], results[1]


def same(fast: object, slow: object) -> None:
    if isinstance(slow, pa.Table):
        assert isinstance(fast, pa.Table), fast
        assert fast.to_pylist() == slow.to_pylist()
        assert fast.schema == slow.schema
    else:
        assert fast == slow


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(spans(), max_size=6), min_size=1, max_size=3))
def test_column_wise_decoding_matches_the_generated_classes(groups):
    body = payload(groups)
    same(*both_ways(body))
    if any(groups):  # all of it valid and plain: read column-wise, not by the fallback
        unit = Unit("proto", "test.pb", records=[(1, body)], label="record")
        assert _decode_proto_columnwise(unit) is not None


def test_a_negative_kind_is_read_by_the_generated_classes():
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, kind=-1).SerializeToString()
    fast, slow = both_ways(payload([[span]]))
    same(fast, slow)
    assert slow.column("span_kind").to_pylist() == [-1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), min_size=1, max_size=4), st.data())
def test_damaged_spans_give_the_same_error_or_table(encoded, data):
    body = payload([encoded])
    cut = data.draw(st.integers(1, len(body) - 1))
    damaged = data.draw(st.sampled_from([
        body[:cut],                                              # truncated
        body[:cut] + bytes([body[cut] ^ 0xFF]) + body[cut + 1:],  # one byte flipped
        body[:cut] + b"\x80" + body[cut:],                        # one byte inserted
    ]))
    same(*both_ways(damaged))


@pytest.mark.parametrize(("span", "reason"), [
    (Span(trace_id=bytes(14) + b"\x01", span_id=b"\x01" * 8, name="short"), "trace id has 15 bytes"),
    (Span(trace_id=b"\x01" * 16, span_id=bytes(8), name="zero"), "span id is all zeros"),
    (Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, parent_span_id=b"\x01" * 4, name="p"),
     "parent span id has 4 bytes"),
    (Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, start_time_unix_nano=2**63, name="late"),
     "beyond the year 2262"),
])
def test_bad_spans_give_the_same_error(span, reason):
    fast, slow = both_ways(payload([[span.SerializeToString()]]))
    assert fast == slow
    assert reason in slow


def test_invalid_utf8_in_a_name_gives_the_same_error():
    encoded = Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8).SerializeToString()
    fast, slow = both_ways(payload([[encoded + length_delimited(5, b"\xc3\x28")]]))
    assert fast == slow
    assert "not a valid ExportTraceServiceRequest" in slow


def test_a_name_given_twice_is_checked_for_utf8_both_times():
    encoded = Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 8).SerializeToString()
    for first, ok in ((b"\xc3\x28", False), (b"fine", True)):
        twice = encoded + length_delimited(5, first) + length_delimited(5, b"last")
        fast, slow = both_ways(payload([[twice]]))
        same(fast, slow)
        assert isinstance(slow, pa.Table) == ok
        if ok:
            assert slow.column("name").to_pylist() == ["last"]


def test_walk_spans_reads_fields_in_place():
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat", kind=3,
                start_time_unix_nano=T0, end_time_unix_nano=T0 + 5,
                attributes=key_values({"a": 1, "b": "x"}),
                status=Status(code=2, message="boom")).SerializeToString()
    data = np.frombuffer(b"xx" + span + bytes(PAD), np.uint8)
    fields = walk_spans(data, np.array([2]), np.array([2 + len(span)]))
    assert fields is not None
    start, length = fields.name
    assert data[start[0]:start[0] + length[0]].tobytes() == b"chat"
    assert fields.kind.tolist() == [3]
    assert fields.start_time_ns.tolist() == [T0]
    assert fields.end_time_ns.tolist() == [T0 + 5]
    assert len(fields.attributes[0]) == 2
    start, length = fields.status
    assert Status.FromString(data[start[0]:start[0] + length[0]].tobytes()).message == "boom"


def test_walk_spans_refuses_what_it_does_not_read():
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8).SerializeToString()
    # a group, a wire type that does not exist, a kind as bytes, a 10-byte varint
    for tail in (b"\x0b", b"\x33", b"\x52\x01", b"\x30" + b"\xff" * 9 + b"\x01"):
        data = np.frombuffer(span + tail + bytes(PAD), np.uint8)
        assert walk_spans(data, np.array([0]), np.array([len(span) + len(tail)])) is None


