"""Spans out as OTLP files, batched and laid out the way a real pipeline writes them.

Each service process exports through a BatchSpanProcessor: spans are queued as they
*end* and exported every 5 seconds, at most 512 per request, so one trace's spans land
in several requests (children first, the root last). An OpenTelemetry Collector writes
every request it receives to one file per service and day with its file exporter:

- `format: proto` — each `ExportTraceServiceRequest` prefixed by its length as a 4-byte
  big-endian integer, the whole file one zstd stream (the exporter's native compression);
- `format: json` — OTLP/JSON, one request per line, gzip-compressed by log rotation.
  The JSON follows the OTLP rules: hex ids, 64-bit integers as strings, enums as
  integers, lowerCamelCase keys.

Spans are encoded straight to protobuf wire format / JSON text (field order and
encoding identical to `SerializeToString` of opentelemetry-proto messages — the tests
check this), because building millions of message objects would dominate the run time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import zstandard

from . import company
from .conventions import FLAGS_HAS_IS_REMOTE, SpanColumns

TRACES_SUBDIR = "traces"   # OTLP files go here; ground_truth.json stays beside, not inside
EXPORT_INTERVAL_NS = 5_000_000_000
MAX_EXPORT_BATCH = 512
SDK_RESOURCE = (("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"),
                ("telemetry.sdk.version", "1.38.0"))

# -- protobuf wire format ----------------------------------------------------------------

_SMALL_VARINTS = [bytes([i]) for i in range(128)]
_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_FLAGS = b"\x85\x01" + struct.pack("<I", FLAGS_HAS_IS_REMOTE)


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    if isinstance(value, str):
        return _ld(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, list | tuple):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _any_value(v)) for v in value))
    raise TypeError(f"unsupported attribute value {value!r}")


def _key_value(key: str, value: Any) -> bytes:
    return _ld(b"\x0a", key.encode()) + _ld(b"\x12", _any_value(value))


def _cacheable(value: Any) -> bool:
    return not isinstance(value, str) or len(value) <= 48


class ProtoEncoder:
    """Spans to `Span` messages in wire format; frequent attributes are encoded once."""

    suffix = ".binpb.zst"

    def __init__(self) -> None:
        self._attr_cache: dict[tuple[str, Any], bytes] = {}

    def attribute(self, key: str, value: Any, tag: bytes = b"\x4a") -> bytes:
        cache_key = (key, tuple(value) if isinstance(value, list) else value)
        if _cacheable(value) and tag == b"\x4a":
            hit = self._attr_cache.get(cache_key)
            if hit is None:
                hit = self._attr_cache[cache_key] = _ld(tag, _key_value(key, value))
            return hit
        return _ld(tag, _key_value(key, value))

    def spans(self, cols: SpanColumns) -> list[bytes]:
        const = b"".join(self.attribute(k, v) for k, v in cols.const_attrs)
        kind = b"\x30" + varint(cols.kind)
        starts, ends = cols.start_ns.tolist(), cols.end_ns.tolist()
        out = []
        attr_cols = cols.attrs
        for i in range(len(cols)):
            parent = cols.parent_span_id[i]
            parts = [b"\x0a\x10", cols.trace_id[i], b"\x12\x08", cols.span_id[i]]
            if parent is not None:
                parts += [b"\x22\x08", parent]
            parts += [_ld(b"\x2a", cols.name[i].encode()), kind, b"\x39", _pack_q(starts[i]),
                      b"\x41", _pack_q(ends[i]), const]
            for key, values in attr_cols:
                value = values[i]
                if value is not None:
                    parts.append(self.attribute(key, value))
            if cols.events is not None and cols.events[i]:
                for name, t, attrs in cols.events[i]:
                    body = b"\x09" + _pack_q(t) + _ld(b"\x12", name.encode()) + b"".join(
                        _ld(b"\x1a", _key_value(k, v)) for k, v in attrs)
                    parts.append(_ld(b"\x5a", body))
            status = b""
            if cols.status_message[i]:
                status += _ld(b"\x12", cols.status_message[i].encode())
            if cols.status_code[i]:
                status += b"\x18" + varint(cols.status_code[i])
            if status:
                parts.append(_ld(b"\x7a", status))
            parts.append(_FLAGS)
            out.append(b"".join(parts))
        return out

    def request(self, resource: list[tuple[str, Any]], scopes: list[tuple[tuple[str, str],
                                                                        list[bytes]]]) -> bytes:
        res = b"".join(_ld(b"\x0a", _key_value(k, v)) for k, v in resource)
        body = _ld(b"\x0a", res)
        for (name, version), spans in scopes:
            scope = _ld(b"\x0a", name.encode()) + _ld(b"\x12", version.encode())
            scope_spans = _ld(b"\x0a", scope) + b"".join(_ld(b"\x12", s) for s in spans)
            body += _ld(b"\x12", scope_spans)
        return _ld(b"\x0a", body)

    @staticmethod
    def record(request: bytes) -> bytes:
        return struct.pack(">I", len(request)) + request


# -- OTLP/JSON --------------------------------------------------------------------------

def _json_any(value: Any) -> str:
    if isinstance(value, str):
        return '{"stringValue":' + json.dumps(value) + "}"
    if isinstance(value, bool):
        return '{"boolValue":' + ("true" if value else "false") + "}"
    if isinstance(value, int):
        return '{"intValue":"' + str(value) + '"}'
    if isinstance(value, float):
        return '{"doubleValue":' + json.dumps(value) + "}"
    if isinstance(value, list | tuple):
        return '{"arrayValue":{"values":[' + ",".join(_json_any(v) for v in value) + "]}}"
    raise TypeError(f"unsupported attribute value {value!r}")


def _json_kv(key: str, value: Any) -> str:
    return '{"key":' + json.dumps(key) + ',"value":' + _json_any(value) + "}"


class JsonEncoder:
    """Spans to OTLP/JSON objects (as text), following the OTLP JSON encoding rules."""

    suffix = ".jsonl.gz"

    def __init__(self) -> None:
        self._attr_cache: dict[tuple[str, Any], str] = {}

    def attribute(self, key: str, value: Any) -> str:
        if not _cacheable(value):
            return _json_kv(key, value)
        cache_key = (key, tuple(value) if isinstance(value, list) else value)
        hit = self._attr_cache.get(cache_key)
        if hit is None:
            hit = self._attr_cache[cache_key] = _json_kv(key, value)
        return hit

    def spans(self, cols: SpanColumns) -> list[bytes]:
        const = [self.attribute(k, v) for k, v in cols.const_attrs]
        kind = str(cols.kind)
        starts, ends = cols.start_ns.tolist(), cols.end_ns.tolist()
        out = []
        for i in range(len(cols)):
            head = ['{"traceId":"', cols.trace_id[i].hex(), '","spanId":"', cols.span_id[i].hex()]
            parent = cols.parent_span_id[i]
            if parent is not None:
                head += ['","parentSpanId":"', parent.hex()]
            head += [f'","flags":{FLAGS_HAS_IS_REMOTE},"name":', json.dumps(cols.name[i]),
                     ',"kind":', kind, ',"startTimeUnixNano":"', str(starts[i]),
                     '","endTimeUnixNano":"', str(ends[i]), '","attributes":[']
            attrs = list(const)
            for key, values in cols.attrs:
                value = values[i]
                if value is not None:
                    attrs.append(self.attribute(key, value))
            head.append(",".join(attrs))
            head.append("]")
            if cols.events is not None and cols.events[i]:
                events = ['{"timeUnixNano":"' + str(t) + '","name":' + json.dumps(name)
                          + ',"attributes":[' + ",".join(_json_kv(k, v) for k, v in attrs_) + "]}"
                          for name, t, attrs_ in cols.events[i]]
                head.append(',"events":[' + ",".join(events) + "]")
            status = []
            if cols.status_code[i]:
                status.append(f'"code":{cols.status_code[i]}')
            if cols.status_message[i]:
                status.append('"message":' + json.dumps(cols.status_message[i]))
            head.append(',"status":{' + ",".join(status) + "}}")
            out.append("".join(head).encode())
        return out

    def request(self, resource: list[tuple[str, Any]], scopes: list[tuple[tuple[str, str],
                                                                        list[bytes]]]) -> bytes:
        res = ",".join(_json_kv(k, v) for k, v in resource)
        parts = []
        for (name, version), spans in scopes:
            parts.append('{"scope":{"name":' + json.dumps(name) + ',"version":' + json.dumps(version)
                         + '},"spans":[' + b",".join(spans).decode() + "]}")
        return ('{"resourceSpans":[{"resource":{"attributes":[' + res + ']},"scopeSpans":['
                + ",".join(parts) + "]}]}").encode()

    @staticmethod
    def record(request: bytes) -> bytes:
        return request + b"\n"


# -- batching and files --------------------------------------------------------------------


@dataclass
class _Stream:
    """The export queue of one service process (one service version)."""

    service: company.Service
    version: str
    phase_ns: int
    end_ns: list[np.ndarray] = field(default_factory=list)
    scope: list[list[str]] = field(default_factory=list)
    encoded: list[list[bytes]] = field(default_factory=list)


@dataclass
class WrittenFile:
    path: Path
    spans: int
    requests: int
    bytes: int


class TraceFileWriter:
    """Collects encoded spans per service process and writes them a day at a time."""

    def __init__(self, out_dir: Path, file_format: str | None = None, compress: bool = True,
                 level: int | None = None):
        self.out_dir = out_dir
        self.file_format = file_format
        self.compress = compress
        self.level = level
        self.encoders = {"proto": ProtoEncoder(), "json": JsonEncoder()}
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.files: list[WrittenFile] = []

    def format_of(self, service: company.Service) -> str:
        return self.file_format or service.file_format

    def add(self, service: company.Service, cols: SpanColumns) -> None:
        """Queue a block's spans; spans of one block may belong to several versions."""
        encoded = self.encoders[self.format_of(service)].spans(cols)
        versions = np.array(cols.version, dtype=object)
        for version in sorted(set(cols.version)):
            stream = self._stream(service, version)
            pick = np.flatnonzero(versions == version)
            stream.end_ns.append(cols.end_ns[pick])
            stream.scope.append([cols.scope[i] for i in pick.tolist()])
            stream.encoded.append([encoded[i] for i in pick.tolist()])

    def _stream(self, service: company.Service, version: str) -> _Stream:
        key = (service.name, version)
        if key not in self.streams:
            digest = hashlib.blake2b(f"{service.name}/{version}".encode(), digest_size=4).digest()
            phase = int.from_bytes(digest, "big") % EXPORT_INTERVAL_NS
            self.streams[key] = _Stream(service, version, phase)
        return self.streams[key]

    def flush(self, cut_ns: int, day_label: str, drop_rest: bool = False) -> None:
        """Export every span that ended before the last export tick at or before `cut_ns`.

        With `drop_rest`, spans ending at or after `cut_ns` are discarded: they had not
        ended when the data was captured.
        """
        per_service: dict[str, list[tuple[int, int, bytes, int]]] = {}
        for order, (_, stream) in enumerate(sorted(self.streams.items())):
            if not stream.end_ns:
                continue
            ends = np.concatenate(stream.end_ns)
            scopes = [s for chunk in stream.scope for s in chunk]
            encoded = [e for chunk in stream.encoded for e in chunk]
            tick = cut_ns if drop_rest else cut_ns - (cut_ns - stream.phase_ns) % EXPORT_INTERVAL_NS
            sort = np.argsort(ends, kind="stable")
            ends_sorted = ends[sort]
            ready = int(np.searchsorted(ends_sorted, tick, side="left"))
            emit, keep = sort[:ready], sort[ready:]
            requests = self._batches(stream, ends[emit], [scopes[i] for i in emit.tolist()],
                                     [encoded[i] for i in emit.tolist()])
            per_service.setdefault(stream.service.name, []).extend(
                (t, order, req, n) for t, req, n in requests)
            stream.end_ns = [] if drop_rest or not len(keep) else [ends[keep]]
            stream.scope = [] if drop_rest else [[scopes[i] for i in keep.tolist()]]
            stream.encoded = [] if drop_rest else [[encoded[i] for i in keep.tolist()]]
        for name in company.SERVICES:
            if name in per_service:
                self._write_file(company.SERVICES[name], day_label,
                                 sorted(per_service[name], key=lambda r: (r[0], r[1])))

    def _batches(self, stream: _Stream, ends: np.ndarray, scopes: list[str],
                 encoded: list[bytes]) -> list[tuple[int, bytes, int]]:
        """Group spans (sorted by end time) into export requests: per 5 s tick, <= 512 each."""
        encoder = self.encoders[self.format_of(stream.service)]
        resource = [("service.name", stream.service.name), ("service.version", stream.version),
                    ("deployment.environment.name", company.ENVIRONMENT), *SDK_RESOURCE]
        ticks = (ends - stream.phase_ns) // EXPORT_INTERVAL_NS
        out = []
        bounds = np.flatnonzero(np.diff(ticks)) + 1
        for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(ends)].tolist(),
                          strict=True):
            export_at = int((ticks[lo] + 1) * EXPORT_INTERVAL_NS + stream.phase_ns)
            for start in range(lo, hi, MAX_EXPORT_BATCH):
                stop = min(start + MAX_EXPORT_BATCH, hi)
                grouped: dict[str, list[bytes]] = {}
                for i in range(start, stop):
                    grouped.setdefault(scopes[i], []).append(encoded[i])
                scope_list = [(stream.service.scopes[s], spans) for s, spans in grouped.items()]
                out.append((export_at, encoder.request(resource, scope_list), stop - start))
        return out

    def _write_file(self, service: company.Service, day_label: str,
                    requests: list[tuple[int, int, bytes, int]]) -> None:
        fmt = self.format_of(service)
        encoder = self.encoders[fmt]
        suffix = encoder.suffix if self.compress else encoder.suffix.rsplit(".", 1)[0]
        path = self.out_dir / TRACES_SUBDIR / service.name / f"traces-{day_label}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as raw:
            sink = self._compressed(raw, fmt)
            for _, _, request, _ in requests:
                sink.write(encoder.record(request))
            sink.close()
        self.files.append(WrittenFile(path, sum(r[3] for r in requests), len(requests),
                                      path.stat().st_size))

    def _compressed(self, raw: BinaryIO, fmt: str) -> Any:
        if not self.compress:
            return _Uncompressed(raw)
        if fmt == "proto":
            level = self.level if self.level is not None else 3
            return zstandard.ZstdCompressor(level=level).stream_writer(raw, closefd=False)
        level = min(self.level, 9) if self.level is not None else 6
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level)


class _Uncompressed(io.RawIOBase):
    def __init__(self, raw: BinaryIO):
        self._raw = raw

    def write(self, data: Any) -> int:
        return self._raw.write(data)

    def close(self) -> None:
        pass
