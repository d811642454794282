"""Find the OTLP trace requests in a file, whatever it is called and however it is encoded.

The format is read from the content, never from the file name:

* whole-file gzip or zstd (decompressed as a stream, within `[ingest]` limits, so a
  decompression bomb is stopped early instead of expanded);
* an OTLP protobuf `ExportTraceServiceRequest` (what an SDK's OTLP/HTTP exporter sends);
* OTLP/JSON, one request per document, pretty-printed or not;
* JSON Lines of requests, as the OpenTelemetry Collector's file exporter writes them;
* the file exporter's `format: proto` output: records prefixed by a 4-byte big-endian
  length, each record protobuf (or JSON), optionally zstd-compressed on its own.

What comes out is a stream of `Unit`s: groups of request payloads of about `UNIT_BYTES`,
small enough to decode in a worker process and to keep memory bounded whatever the file
size. A protobuf request too large for one unit is cut at resource, scope or span
boundaries and re-framed, so every payload is itself a valid request. Parsing the
payloads is `otlp_decode`'s job; problems found here raise `FormatError` with one line
saying what is wrong and, when the file is not OTLP at all, what to use instead.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import zstandard
from stepscope.ingest.wire import WireError, encode_varint, length_delimited

from stepscope.config import IngestConfig

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
UTF8_BOM = b"\xef\xbb\xbf"
HEAD_BYTES = 64 * 1024
UNIT_BYTES = 8 * 1024 * 1024
# One JSON document is parsed whole; above this size its Python objects alone would
# take gigabytes, so it is refused with advice to write JSON Lines or protobuf.
MAX_JSON_DOCUMENT_BYTES = 64 * 1024 * 1024
# A length-prefixed record that declares more than this is treated as corruption.
MAX_RECORD_BYTES = 512 * 1024 * 1024
# Decompression ratios are only judged past this much output: a tiny file that expands
# to a few hundred kilobytes of repetitive JSON is harmless, whatever its ratio.
RATIO_FLOOR_BYTES = 1024 * 1024

_JSON_WHITESPACE = b" \t\r\n"
_OTHER_CONTAINERS = (
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"PAR1", "a Parquet file"),
)

Kind = Literal["proto", "json"]


class FormatError(ValueError):
    """The file cannot be read as OTLP traces; the message is one line saying why."""


@dataclass
class Unit:
    """Request payloads for one decoding task, all from one source.

    `records` holds (record number, payload) pairs: the payload is an encoded
    `ExportTraceServiceRequest` (`kind="proto"`) or the UTF-8 text of one OTLP/JSON
    document (`kind="json"`). The record number is what `source_batch` stores: the line
    of a JSON Lines file, the record of a length-prefixed file, else 1. With
    `independent`, a bad record is rejected alone (JSON Lines); otherwise it spoils
    the whole source. `errors` lists records refused before decoding. `consumed` is
    how far into the (compressed) file this unit reaches, for progress reports.
    """

    kind: Kind
    source: str
    records: list[tuple[int, bytes]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # records refused already
    independent: bool = False
    label: str = "request"
    consumed: int = 0

    @property
    def size(self) -> int:
        return sum(len(p) for _, p in self.records)


# -- decompression within limits ----------------------------------------------------------


class _LimitedStream(io.RawIOBase):
    """A decompressing stream that stops as soon as the output breaks the limits."""

    def __init__(self, inner: BinaryIO, compressed: BinaryIO, what: str, limits: IngestConfig):
        self.inner = inner
        self.compressed = compressed
        self.what = what
        self.limits = limits
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(min(len(buffer), 1024 * 1024))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise FormatError(f"corrupt {self.what} data: {exc}") from None
        n = len(data)
        buffer[:n] = data
        self.produced += n
        check_expansion(self.produced, self.compressed.tell(), self.what, self.limits)
        return n


def check_expansion(produced: int, consumed: int, what: str, limits: IngestConfig) -> None:
    """Refuse output beyond `max_decompressed_bytes` or `max_decompression_ratio`."""
    if produced > limits.max_decompressed_bytes:
        raise FormatError(
            f"{what} data expands beyond {_size(limits.max_decompressed_bytes)} "
            "([ingest] max_decompressed_bytes); refused as a possible decompression bomb"
        )
    if produced > RATIO_FLOOR_BYTES and produced > limits.max_decompression_ratio * max(consumed, 1):
        raise FormatError(
            f"{what} data expands more than {limits.max_decompression_ratio}x "
            f"({_size(consumed)} to over {_size(produced)}; [ingest] max_decompression_ratio); "
            "refused as a possible decompression bomb"
        )


def decompress_record(payload: bytes, what: str, limits: IngestConfig) -> bytes:
    """Decompress one zstd frame (a file exporter record) within the limits."""
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload), read_across_frames=True)
    try:
        while chunk := reader.read(1024 * 1024):
            out += chunk
            check_expansion(len(out), len(payload), what, limits)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt zstd data in {what}: {exc}") from None
    return bytes(out)


def open_decompressed(raw: BinaryIO, limits: IngestConfig) -> tuple[io.BufferedReader, str]:
    """The file's content, decompressed when the whole file is gzip or zstd."""
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(GZIP_MAGIC):
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        what = "gzip"
    elif magic == ZSTD_MAGIC:
        inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        what = "zstd"
    else:
        return io.BufferedReader(raw, 1024 * 1024), ""  # type: ignore[arg-type]
    return io.BufferedReader(_LimitedStream(inner, raw, what, limits), 1024 * 1024), what


# -- reading a file -----------------------------------------------------------------------


def read_units(path: str | os.PathLike[str], limits: IngestConfig,
               unit_bytes: int | None = None) -> Iterator[Unit]:
    """Yield the units of one file, detecting its format; raises FormatError when bad."""
    source = str(path)
    unit_bytes = unit_bytes or UNIT_BYTES
    size = os.path.getsize(path)
    if size == 0:
        raise FormatError("empty file (0 bytes)")
    if size > limits.max_file_bytes:
        raise FormatError(
            f"file is {_size(size)}, above the {_size(limits.max_file_bytes)} limit "
            "([ingest] max_file_bytes)"
        )
    with open(path, "rb") as raw:
        stream, compression = open_decompressed(raw, limits)
        head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
        if not head:
            raise FormatError(f"{compression} data is truncated or corrupt: it decompresses to nothing")
        kind = sniff(head)
        if kind == "json":
            yield from _json_units(stream, raw, source, unit_bytes)
        elif kind == "proto":
            yield from _request_units(stream, raw, source, unit_bytes, batch=1)
        elif kind == "length_prefixed":
            yield from _length_prefixed_units(stream, raw, source, limits, unit_bytes)
        else:
            raise FormatError(not_otlp_reason(head, compression))


def sniff(head: bytes) -> str:
    """`json`, `proto`, `length_prefixed` or `unknown`, from the first bytes of content."""
    text = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    stripped = text.lstrip(_JSON_WHITESPACE)
    if stripped[:1] == b"[":
        return "json"
    if stripped[:1] == b"{":
        after = stripped[1:].lstrip(_JSON_WHITESPACE)[:1]
        if after in (b'"', b"}", b""):
            return "json"
    if head[:1] == b"\x0a":
        return "proto"
    if len(head) >= 5:
        (length,) = struct.unpack(">I", head[:4])
        body = head[4:8]
        if 0 < length <= MAX_RECORD_BYTES and (
            body.startswith(ZSTD_MAGIC) or body[:1] in (b"\x0a", b"{")
        ):
            return "length_prefixed"
    return "unknown"


def not_otlp_reason(head: bytes, compression: str = "") -> str:
    inside = f" (inside the {compression} compression)" if compression else ""
    for magic, what in _OTHER_CONTAINERS:
        if head.startswith(magic):
            advice = "" if what.startswith("a Parquet") else "; unpack it and ingest the files inside"
            return f"not OTLP: {what}{inside}{advice}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut by the head's end
            return (f"not OTLP: unrecognised binary content{inside} "
                    f"(starts with {head[:8].hex(' ')})")
        text = head[: exc.start].decode("utf-8")
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return (f"not OTLP: text{inside} that is neither OTLP/JSON nor JSON Lines "
            f"(starts with {first!r})")


# -- JSON: one document, or JSON Lines ----------------------------------------------------


def _json_units(stream: io.BufferedReader, raw: BinaryIO, source: str,
                unit_bytes: int) -> Iterator[Unit]:
    first = stream.readline(MAX_JSON_DOCUMENT_BYTES + 1)
    second = stream.readline(MAX_JSON_DOCUMENT_BYTES + 1)
    if _is_json_value(first):
        if not second.strip() and not stream.peek(1):
            # One line and nothing after it: a document, not JSON Lines.
            yield Unit("json", source, [(1, first)], consumed=raw.tell())
            return
        check_first_json_line(first)
        yield from _json_lines_units(first + second, stream, raw, source, unit_bytes)
        return
    if first.strip() and _is_json_value(second) and _looks_like_request(second):
        # A broken first line of an otherwise good JSON Lines file.
        units = _json_lines_units(first + second, stream, raw, source, unit_bytes)
        yield from units
        return
    rest = stream.read(MAX_JSON_DOCUMENT_BYTES + 1 - len(first) - len(second))
    text = first + second + rest
    if len(text) > MAX_JSON_DOCUMENT_BYTES or stream.peek(1):
        raise FormatError(
            f"one OTLP/JSON document of more than {_size(MAX_JSON_DOCUMENT_BYTES)}; "
            "write JSON Lines (one request per line, as the Collector's file exporter does) "
            "or protobuf instead"
        )
    yield Unit("json", source, [(1, text)], consumed=raw.tell())


def _json_lines_units(start: bytes, stream: io.BufferedReader, raw: BinaryIO, source: str,
                      unit_bytes: int) -> Iterator[Unit]:
    unit = Unit("json", source, independent=True, label="line")
    pending = 0
    line_no = 0
    for line in _lines(start, stream):
        line_no += 1
        if not line.strip():
            continue
        if len(line) > MAX_JSON_DOCUMENT_BYTES:
            unit.errors.append((line_no, f"a line of more than {_size(MAX_JSON_DOCUMENT_BYTES)}"))
        else:
            unit.records.append((line_no, line.rstrip(b"\r\n")))
        pending += len(line)
        if pending >= unit_bytes:
            unit.consumed = raw.tell()
            yield unit
            unit = Unit("json", source, independent=True, label="line")
            pending = 0
    unit.consumed = raw.tell()
    if unit.records or unit.errors:
        yield unit


def _lines(start: bytes, stream: io.BufferedReader) -> Iterator[bytes]:
    yield from io.BytesIO(start)
    while line := stream.readline(MAX_JSON_DOCUMENT_BYTES + 1):
        if len(line) > MAX_JSON_DOCUMENT_BYTES and not line.endswith(b"\n"):
            # Skip the rest of an over-long line so the next one starts cleanly.
            while (more := stream.readline(MAX_JSON_DOCUMENT_BYTES)) and not more.endswith(b"\n"):
                pass
        yield line


def _is_json_value(line: bytes) -> bool:
    if not line.strip():
        return False
    try:
        json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return True


def _looks_like_request(line: bytes) -> bool:
    doc = json.loads(line)
    return isinstance(doc, dict) and ("resourceSpans" in doc or "resource_spans" in doc)


def check_first_json_line(line: bytes) -> None:
    """The first line decides whether a JSON Lines file holds OTLP traces at all."""
    doc = json.loads(line)
    problem = json_shape_problem(doc)
    if problem:
        raise FormatError(problem if problem.startswith("not OTLP") else f"line 1: {problem}")


def json_shape_problem(doc: object) -> str | None:
    """Why a parsed JSON document is not an OTLP trace request, or None when it is one."""
    if isinstance(doc, dict):
        if "resourceSpans" in doc or "resource_spans" in doc:
            return None
        if is_console_exporter_span(doc):
            return CONSOLE_EXPORTER_REASON
        for signal in ("resourceLogs", "resourceMetrics", "resource_logs", "resource_metrics"):
            if signal in doc:
                kind = "logs" if "ogs" in signal else "metrics"
                return f"not OTLP traces: this is an OTLP {kind} request ({signal}); send traces"
        keys = ", ".join(list(doc)[:6]) or "none"
        return (f"not an OTLP trace request: expected a top-level 'resourceSpans' list, "
                f"found keys: {keys}")
    if isinstance(doc, list):
        if doc and isinstance(doc[0], dict) and is_console_exporter_span(doc[0]):
            return CONSOLE_EXPORTER_REASON
        return ("not an OTLP trace request: a JSON array; OTLP/JSON is one object with "
                "'resourceSpans' per document (or per line)")
    return f"not an OTLP trace request: a JSON {type(doc).__name__}, expected an object"


CONSOLE_EXPORTER_REASON = (
    "not OTLP: this is the OpenTelemetry SDK console exporter's output "
    "(ConsoleSpanExporter / span.to_json()), which has no stable format; export with "
    "an OTLP exporter instead (OTLPSpanExporter to a Collector or to `stepscope serve`, "
    "or the Collector's file exporter)"
)


def is_console_exporter_span(doc: dict) -> bool:
    context = doc.get("context")
    return isinstance(context, dict) and "trace_id" in context and "span_id" in context


# -- protobuf requests ------------------------------------------------------------------


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


def _request_units(stream: BinaryIO, raw: BinaryIO | None, source: str, unit_bytes: int,
                   batch: int, consumed: int = 0) -> Iterator[Unit]:
    """Cut one protobuf request into units, each payload a request of its own."""
    where = "protobuf" if batch == 1 else f"protobuf record {batch}"
    reader = _FieldReader(stream)
    chunk: list[bytes] = []
    pending = 0

    def unit(parts: list[bytes]) -> Unit:
        return Unit("proto", source, [(batch, b"".join(parts))],
                    consumed=raw.tell() if raw is not None else consumed)

    try:
        while (item := reader.field()) is not None:
            number, wire, length = item
            if number != 1 or wire != 2:
                reader.skip(wire, length)  # unknown fields are allowed, and ignored
                continue
            if length > unit_bytes:
                if chunk:
                    yield unit(chunk)
                    chunk, pending = [], 0
                for payload in _split_resource_spans(stream, length, unit_bytes):
                    yield unit([payload])
                continue
            chunk.append(length_delimited(1, reader.read(length)))
            pending += length
            if pending >= unit_bytes:
                yield unit(chunk)
                chunk, pending = [], 0
    except WireError as exc:
        raise FormatError(f"{where} is {exc} (not a valid ExportTraceServiceRequest)") from None
    if chunk:
        yield unit(chunk)


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


# -- the Collector file exporter's length-prefixed records ------------------------------


def _length_prefixed_units(stream: io.BufferedReader, raw: BinaryIO, source: str,
                           limits: IngestConfig, unit_bytes: int) -> Iterator[Unit]:
    record = 0
    unit = Unit("proto", source, label="record")
    pending = 0
    expanded = 0
    while header := stream.read(4):
        record += 1
        if len(header) < 4:
            raise FormatError(f"record {record}: truncated length prefix ({len(header)} of 4 bytes)")
        (length,) = struct.unpack(">I", header)
        if length == 0 or length > MAX_RECORD_BYTES:
            raise FormatError(f"record {record}: implausible length {length}; corrupt file?")
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
            if unit.records:
                unit.consumed = raw.tell()
                yield unit
                unit, pending = Unit("proto", source, label="record"), 0
            yield from _request_units(io.BytesIO(payload), None, source, unit_bytes,
                                      batch=record, consumed=raw.tell())
            continue
        if unit.records and unit.kind != kind:
            unit.consumed = raw.tell()
            yield unit
            unit, pending = Unit(kind, source, label="record"), 0
        unit.kind = kind
        unit.records.append((record, payload))
        pending += len(payload)
        if pending >= unit_bytes:
            unit.consumed = raw.tell()
            yield unit
            unit, pending = Unit("proto", source, label="record"), 0
    if unit.records:
        unit.consumed = raw.tell()
        yield unit


# -- a request body (the live receiver) ----------------------------------------------------


def request_unit(body: bytes, content_type: str, source: str, batch: int = 1) -> Unit:
    """One OTLP/HTTP request body as a unit; the content type decides the encoding."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return Unit("proto", source, [(batch, body)])
    if media == "application/json":
        return Unit("json", source, [(batch, body)])
    raise FormatError(
        f"unsupported content type {content_type!r}: OTLP/HTTP sends "
        "application/x-protobuf or application/json"
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
