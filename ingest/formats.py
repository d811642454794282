"""Find the OTLP trace requests in a file, whatever it is called and however it is encoded.

The format is read from the first bytes of content, never from the file name:

* whole-file gzip or zstd, decompressed as a stream within the `[ingest]` limits
  (`compression`), then read as any of the below;
* an OTLP protobuf `ExportTraceServiceRequest`, as an SDK's OTLP/HTTP exporter sends it,
  and the Collector file exporter's length-prefixed records (`proto_framing`);
* OTLP/JSON, one request per document, and JSON Lines of requests as the Collector's
  file exporter writes them (`json_documents`).

What comes out is a stream of `Unit`s of about `UNIT_BYTES`: small enough to decode in a
worker process and to keep memory bounded whatever the file size. Parsing the payloads is
`otlp_decode`'s job. Anything else raises `FormatError`, one line saying what the file
is when it is not OTLP at all (an archive, the SDK console exporter's output, text) and
what to do instead.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from stepscope.config import IngestConfig
from stepscope.ingest.compression import open_decompressed
from stepscope.ingest.json_documents import json_units
from stepscope.ingest.proto_framing import (
    MAX_RECORD_BYTES,
    ZSTD_MAGIC,
    length_prefixed_units,
    request_units,
)
from stepscope.ingest.units import FormatError, Unit, human_size

__all__ = ["UNIT_BYTES", "FormatError", "Unit", "read_units", "request_unit", "sniff"]

UTF8_BOM = b"\xef\xbb\xbf"
HEAD_BYTES = 64 * 1024
UNIT_BYTES = 8 * 1024 * 1024

_JSON_WHITESPACE = b" \t\r\n"
_OTHER_CONTAINERS = (
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"PAR1", "a Parquet file"),
)


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
            f"file is {human_size(size)}, above the {human_size(limits.max_file_bytes)} limit "
            "([ingest] max_file_bytes)"
        )
    with open(path, "rb") as raw:
        stream, compression = open_decompressed(raw, limits)
        head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
        if not head:
            raise FormatError(f"{compression} data is truncated or corrupt: it decompresses to nothing")
        kind = sniff(head)
        # Uncompressed files are left where they are: workers read their own ranges.
        in_file = size if not compression and raw.seekable() and os.path.isfile(path) else None
        if kind == "json":
            yield from json_units(stream, raw, source, unit_bytes)
        elif kind == "proto":
            yield from request_units(stream, raw, source, unit_bytes, batch=1, file_size=in_file)
        elif kind == "length_prefixed":
            yield from length_prefixed_units(stream, raw, source, limits, unit_bytes, in_file)
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
