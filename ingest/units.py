"""What the format readers hand on: units of request payloads, and one-line errors.

A `Unit` is the task size of ingest: a few megabytes of OTLP requests from one source,
decoded and normalised in one go (in a worker process for large inputs). `FormatError`
(the file cannot be read as OTLP) and `OtlpError` (a request in it is not valid OTLP)
carry one line saying why, which is what the user sees next to the file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["proto", "json"]


class OtlpError(ValueError):
    """A request that is not valid OTLP; the message is one line saying where and why."""


class FormatError(ValueError):
    """The file cannot be read as OTLP traces; the message is one line saying why."""


@dataclass
class Unit:
    """Request payloads for one decoding task, all from one source.

    `records` holds (record number, payload) pairs: the payload is an encoded
    `ExportTraceServiceRequest` (`kind="proto"`) or the UTF-8 text of one OTLP/JSON
    document (`kind="json"`). `ranges` holds payloads still in the file `source`, as
    (record number, offset, length): a worker reads them itself, so the bytes of a large
    uncompressed file are read once, where they are decoded, and never pass through the
    parent or a pipe. The record number is what `source_batch` stores: the line
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
    ranges: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(p) for _, p in self.records) + sum(n for _, _, n in self.ranges)

    def payloads(self) -> Iterator[tuple[int, bytes]]:
        """(record number, payload) for every payload, reading the ranges from the file."""
        yield from self.records
        if not self.ranges:
            return
        try:
            with open(self.source, "rb") as file:
                for record, offset, length in self.ranges:
                    file.seek(offset)
                    payload = file.read(length)
                    if len(payload) != length:
                        raise OtlpError("the file changed while it was being read "
                                        "(it is shorter now); ingest it again")
                    yield record, payload
        except OSError as exc:
            raise OtlpError(f"cannot read it again: {exc.strerror or exc}") from None


def human_size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
