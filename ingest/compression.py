"""Decompression within the `[ingest]` limits, so that a bomb is refused, not expanded.

Whole files (gzip or zstd) are decompressed as a stream, and every read checks the
output against `max_decompressed_bytes` and against `max_decompression_ratio` times the
compressed bytes consumed so far; single records (the file exporter's per-record zstd)
are checked the same way.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

import zstandard

from stepscope.config import IngestConfig
from stepscope.ingest.units import FormatError, human_size

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Decompression ratios are only judged past this much output: a tiny file that expands
# to a few hundred kilobytes of repetitive JSON is harmless, whatever its ratio.
RATIO_FLOOR_BYTES = 1024 * 1024


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
            f"{what} data expands beyond {human_size(limits.max_decompressed_bytes)} "
            "([ingest] max_decompressed_bytes); refused as a possible decompression bomb"
        )
    if produced > RATIO_FLOOR_BYTES and produced > limits.max_decompression_ratio * max(consumed, 1):
        raise FormatError(
            f"{what} data expands more than {limits.max_decompression_ratio}x "
            f"({human_size(consumed)} to over {human_size(produced)}; [ingest] max_decompression_ratio); "
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
