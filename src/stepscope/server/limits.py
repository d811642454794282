"""Limits that keep `stepscope serve` bounded in memory and disk, and safe decompression.

Why bounds everywhere: a receiver that buffers whatever arrives eventually runs out of
memory when senders outpace the store. Every buffer here has a ceiling, and when one is
reached the server answers 429/503 with `Retry-After`, which OTLP exporters honour by
waiting and sending the same batch again; nothing acknowledged is ever dropped.

Worst-case memory for request bodies is `max_inflight * (max_body_bytes +
max_decompressed_bytes)`; the spool on disk never exceeds `max_spool_bytes` (plus one
request); each of the `workers` publishing processes holds one batch of at most
`batch_max_bytes` of requests (plus what decoding it makes) at a time.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import zstandard

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """The ceilings of one server process (defaults suit a laptop and a small VM)."""

    max_body_bytes: int = 16 * MIB            # request body as sent (possibly compressed)
    max_decompressed_bytes: int = 64 * MIB    # after Content-Encoding is undone
    max_inflight: int = 4                     # requests whose bodies are in memory at once
    inflight_wait_s: float = 2.0              # how long a request waits for a free slot
    max_connections: int = 256                # open client connections (one thread each)
    max_spool_bytes: int = 256 * MIB          # acknowledged but not yet stored, on disk
    batch_max_bytes: int = 16 * MIB           # requests decoded into one store append
    flush_interval_s: float = 0.5             # the worker publishes at least this often
    workers: int = 0                          # processes publishing batches; 0: one per core
    socket_timeout_s: float = 30.0            # idle keep-alive / slow body read
    retry_after_min_s: int = 1
    retry_after_max_s: int = 30


class BodyTooLarge(ValueError):
    """The body (or what it decompresses to) is over a limit: HTTP 413."""


class BadEncoding(ValueError):
    """The Content-Encoding is not one we decode: HTTP 415."""


class CorruptBody(ValueError):
    """The body does not decompress: HTTP 400."""


#: Content-Encoding values accepted, as the OpenTelemetry Collector accepts them.
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "zstd")
_CHUNK = 256 * 1024


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding`, refusing output beyond `limit` bytes (a decompression bomb).

    Decompression is streamed and stops as soon as the output passes the limit, so a few
    kilobytes of gzip that would expand to gigabytes cost at most `limit` bytes of memory.
    """
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLarge(f"body of {len(body)} bytes is over the {limit}-byte limit")
        return body
    if name in ("gzip", "x-gzip", "deflate"):
        return _inflate(body, name, limit)
    if name == "zstd":
        return _unzstd(body, limit)
    raise BadEncoding(
        f"Content-Encoding {encoding!r} is not supported (use one of: {', '.join(ENCODINGS)})"
    )


def _inflate(body: bytes, name: str, limit: int) -> bytes:
    # gzip: wbits 16+15; deflate per HTTP is zlib-wrapped, but raw deflate is common too.
    wbits = 16 + zlib.MAX_WBITS if name != "deflate" else zlib.MAX_WBITS
    if name == "deflate" and body[:1] and (body[0] & 0x0F) != 8:
        wbits = -zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    data = body
    try:
        while data:
            out += inflater.decompress(data, _CHUNK)
            if len(out) > limit:
                raise BodyTooLarge(f"body decompresses to more than the {limit}-byte limit")
            data = inflater.unconsumed_tail
        out += inflater.flush()
    except zlib.error as exc:
        raise CorruptBody(f"body is not valid {name} data: {exc}") from None
    if len(out) > limit:
        raise BodyTooLarge(f"body decompresses to more than the {limit}-byte limit")
    if not inflater.eof:
        raise CorruptBody(f"body is truncated {name} data")
    if inflater.unused_data and name != "deflate":
        # Concatenated gzip members are legal; decode the rest the same way.
        return bytes(out) + _inflate(inflater.unused_data, name, limit - len(out))
    return bytes(out)


def _unzstd(body: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    out = bytearray()
    try:
        while chunk := reader.read(_CHUNK):
            out += chunk
            if len(out) > limit:
                raise BodyTooLarge(f"body decompresses to more than the {limit}-byte limit")
    except zstandard.ZstdError as exc:
        raise CorruptBody(f"body is not valid zstd data: {exc}") from None
    return bytes(out)
