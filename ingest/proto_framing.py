"""Protobuf requests cut into units, and the Collector file exporter's framed records.

A protobuf file holds one `ExportTraceServiceRequest`: a sequence of `resource_spans`
fields. Units are made of whole fields, read one at a time from the stream; a field
too large for one unit is cut further at scope and then span boundaries and re-framed
with its resource and scope, so every payload is itself a valid request and memory stays
bounded whatever the file size. Only field headers are read here; `otlp_decode` parses.

The file exporter's `format: proto` (and compressed) output is a sequence of records,
each a 4-byte big-endian length then the record: protobuf or JSON, optionally zstd.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from stepscope.config import IngestConfig
from stepscope.ingest.compression import ZSTD_MAGIC, check_expansion, decompress_record
from stepscope.ingest.units import FormatError, Kind, Unit
from stepscope.ingest.wire import WireError, encode_varint, length_delimited

# A length-prefixed record that declares more than this is treated as corruption.
MAX_RECORD_BYTES = 512 * 1024 * 1024
_JSON_WHITESPACE = b" \t\r\n"


class _FieldReader:
    """Reads protobuf fields one at a time from a stream, within an optional length."""

    def __init__(self, stream: BinaryIO, limit: int | None = None):
        self.stream = stream
        self.remaining = limit

    def _byte(self) -> int | None:
        if self.remaining == 0:
            return None
        b = self.stream.read(1)
        if not b:
            return None
        if self.remaining is not None:
            self.remaining -= 1
        return b[0]

    def varint(self, first: int | None = None) -> int:
        result = shift = 0
        for _ in range(10):
            byte = first if first is not None else self._byte()
            first = None
            if byte is None:
                raise WireError("truncated: the data ends inside a field header")
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
        raise WireError("corrupt: a varint longer than 10 bytes")

    def field(self) -> tuple[int, int, int] | None:
        """(field number, wire type, length for wire type 2) or None at the end."""
        first = self._byte()
        if first is None:
            return None
        tag = self.varint(first)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("corrupt: field number 0")
        if wire == 2:
            return number, wire, self.varint()
        return number, wire, 0

    def read(self, n: int) -> bytes:
        if self.remaining is not None and n > self.remaining:
            raise WireError(f"truncated: a field of {n} bytes overruns its message")
        data = self.stream.read(n)
        if len(data) < n:
            raise WireError(f"truncated: a field declares {n} bytes but only {len(data)} remain")
        if self.remaining is not None:
            self.remaining -= n
        return data

    def skip(self, wire: int, length: int) -> None:
        if wire == 0:
            self.varint()
        elif wire == 1:
            self.read(8)
        elif wire == 5:
            self.read(4)
        elif wire == 2:
            self.read(length)
        else:
            raise WireError(f"corrupt: unsupported wire type {wire}")


def request_units(stream: BinaryIO, raw: BinaryIO | None, source: str, unit_bytes: int,
                   batch: int, consumed: int = 0, file_size: int | None = None) -> Iterator[Unit]:
    """Cut one protobuf request into units, each payload a request of its own.

    With `file_size`, `stream` is the file itself (uncompressed, seekable): fields are
    skipped rather than read, and the units name them as ranges of the file for the
    worker to read (`Unit.ranges`). Fields too large for one unit are still read here,
    to be cut further.
    """
    where = "protobuf" if batch == 1 else f"protobuf record {batch}"
    reader = _FieldReader(stream)
    chunk: list[bytes] = []
    ranges: list[tuple[int, int, int]] = []
    pending = 0

    def unit() -> Unit:
        records = [(batch, b"".join(chunk))] if chunk else []
        return Unit("proto", source, records, ranges=list(ranges),
                    consumed=raw.tell() if raw is not None else consumed)

    try:
        while True:
            start = stream.tell() if file_size is not None else 0
            if (item := reader.field()) is None:
                break
            number, wire, length = item
            if number != 1 or wire != 2:
                reader.skip(wire, length)  # unknown fields are allowed, and ignored
                continue
            if length > unit_bytes:
                if chunk or ranges:
                    yield unit()
                    chunk, ranges, pending = [], [], 0
                for payload in _split_resource_spans(stream, length, unit_bytes):
                    yield Unit("proto", source, [(batch, payload)],
                               consumed=raw.tell() if raw is not None else consumed)
                continue
            if file_size is not None:
                end = stream.tell() + length
                if end > file_size:
                    raise WireError(f"truncated: a field declares {length} bytes but only "
                                    f"{file_size - stream.tell()} remain")
                stream.seek(length, io.SEEK_CUR)
                if ranges and ranges[-1][1] + ranges[-1][2] == start:  # contiguous
                    ranges[-1] = (batch, ranges[-1][1], end - ranges[-1][1])
                else:
                    ranges.append((batch, start, end - start))
            else:
                chunk.append(length_delimited(1, reader.read(length)))
            pending += length
            if pending >= unit_bytes:
                yield unit()
                chunk, ranges, pending = [], [], 0
    except WireError as exc:
        raise FormatError(f"{where} is {exc} (not a valid ExportTraceServiceRequest)") from None
    if chunk or ranges:
        yield unit()


def _split_resource_spans(stream: BinaryIO, length: int, unit_bytes: int) -> Iterator[bytes]:
    """Requests of about unit_bytes from one large ResourceSpans, keeping its resource."""
    reader = _FieldReader(stream, length)
    resource = b""
    tail = b""  # schema_url and unknown fields, repeated on every piece
    scopes: list[bytes] = []
    pending = 0
    emitted = False

    def request(scope_fields: list[bytes]) -> bytes:
        return length_delimited(1, resource + b"".join(scope_fields) + tail)

    while (item := reader.field()) is not None:
        number, wire, size = item
        if number == 1 and wire == 2:
            if emitted:
                raise WireError("unsupported: a resource after its spans in a very large request")
            resource = length_delimited(1, reader.read(size))
        elif number == 2 and wire == 2:
            if size > unit_bytes:
                if scopes:
                    yield request(scopes)
                    scopes, pending, emitted = [], 0, True
                for scope_field in _split_scope_spans(stream, reader, size, unit_bytes):
                    yield request([scope_field])
                    emitted = True
                continue
            scopes.append(length_delimited(2, reader.read(size)))
            pending += size
            if pending >= unit_bytes:
                yield request(scopes)
                scopes, pending, emitted = [], 0, True
        else:
            header = encode_varint(number << 3 | wire)
            if wire == 2:
                tail += header + encode_varint(size) + reader.read(size)
            else:
                reader.skip(wire, size)
    if scopes or not emitted:
        yield request(scopes)


def _split_scope_spans(stream: BinaryIO, outer: _FieldReader, length: int,
                       unit_bytes: int) -> Iterator[bytes]:
    """ScopeSpans fields of about unit_bytes each, from one large ScopeSpans."""
    reader = _FieldReader(stream, length)
    scope = b""
    spans: list[bytes] = []
    pending = 0
    emitted = False
    while (item := reader.field()) is not None:
        number, wire, size = item
        if number == 1 and wire == 2:
            if emitted:
                raise WireError("unsupported: a scope after its spans in a very large request")
            scope = length_delimited(1, reader.read(size))
        elif number == 2 and wire == 2:
            spans.append(length_delimited(2, reader.read(size)))
            pending += size
            if pending >= unit_bytes:
                yield length_delimited(2, scope + b"".join(spans))
                spans, pending, emitted = [], 0, True
        else:
            reader.skip(wire, size)
    outer.remaining = None if outer.remaining is None else outer.remaining - length
    if spans or not emitted:
        yield length_delimited(2, scope + b"".join(spans))


def length_prefixed_units(stream: io.BufferedReader, raw: BinaryIO, source: str,
                           limits: IngestConfig, unit_bytes: int,
                           file_size: int | None = None) -> Iterator[Unit]:
    """Units of the file exporter's records. With `file_size` (the stream is the file
    itself), plain protobuf records are left in the file as ranges (`Unit.ranges`)."""
    record = 0
    unit = Unit("proto", source, label="record")
    pending = 0
    expanded = 0

    def flush() -> Iterator[Unit]:
        nonlocal unit, pending
        if unit.records or unit.ranges:
            unit.consumed = raw.tell()
            yield unit
        unit, pending = Unit("proto", source, label="record"), 0

    while header := stream.read(4):
        record += 1
        if len(header) < 4:
            raise FormatError(f"record {record}: truncated length prefix ({len(header)} of 4 bytes)")
        (length,) = struct.unpack(">I", header)
        if length == 0 or length > MAX_RECORD_BYTES:
            raise FormatError(f"record {record}: implausible length {length}; corrupt file?")
        if file_size is not None and length <= unit_bytes and stream.peek(1)[:1] == b"\x0a":
            offset = stream.tell()
            if offset + length > file_size:
                raise FormatError(f"record {record}: truncated (declares {length} bytes, "
                                  f"{file_size - offset} remain)")
            stream.seek(length, io.SEEK_CUR)
            if unit.records:  # payloads stay in file order: a unit holds one sort
                yield from flush()
            unit.ranges.append((record, offset, length))
            pending += length
            if pending >= unit_bytes:
                yield from flush()
            continue
        payload = stream.read(length)
        if len(payload) < length:
            raise FormatError(
                f"record {record}: truncated (declares {length} bytes, {len(payload)} remain)"
            )
        if payload.startswith(ZSTD_MAGIC):
            payload = decompress_record(payload, f"record {record}", limits)
            expanded += len(payload)
            check_expansion(expanded, raw.tell(), "zstd", limits)
        kind: Kind = "json" if payload.lstrip(_JSON_WHITESPACE)[:1] == b"{" else "proto"
        if kind == "proto" and len(payload) > unit_bytes:
            yield from flush()
            yield from request_units(io.BytesIO(payload), None, source, unit_bytes,
                                      batch=record, consumed=raw.tell())
            continue
        if unit.ranges or (unit.records and unit.kind != kind):
            yield from flush()
        unit.kind = kind
        unit.records.append((record, payload))
        pending += len(payload)
        if pending >= unit_bytes:
            yield from flush()
    yield from flush()
