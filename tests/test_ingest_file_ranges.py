"""Uncompressed protobuf stays in its file: units name byte ranges that workers read."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pyarrow as pa
import pytest
from ingest_support import ingest, reasons, write_files
from otlp_builders import (
    agent_trace,
    gzipped,
    request,
    request_of,
    resource_spans,
    to_length_prefixed,
    to_protobuf,
    zstandard,
)

from stepscope.config import IngestConfig
from stepscope.ingest.formats import read_units
from stepscope.ingest.otlp_decode import decode_unit
from stepscope.ingest.units import OtlpError
from stepscope.store import Store

LIMITS = IngestConfig()
MANY = request_of(*(resource_spans(agent_trace(n)) for n in range(1, 21)))


def decoded(path: Path, unit_bytes: int | None = None) -> pa.Table:
    kwargs = {"unit_bytes": unit_bytes} if unit_bytes else {}
    tables = [decode_unit(unit)[0] for unit in read_units(path, LIMITS, **kwargs)]
    return pa.concat_tables(tables).drop_columns(["source_file"])


def test_protobuf_units_hold_ranges_of_the_file_not_its_bytes(tmp_path):
    body = to_protobuf(MANY)
    (path,) = write_files(tmp_path, {"traces.pb": body})
    units = list(read_units(path, LIMITS, unit_bytes=2_000))
    assert len(units) > 3
    assert all(unit.records == [] and unit.ranges for unit in units)
    # The ranges tile the file: the request's fields, in order, nothing left out.
    spans = [(offset, length) for unit in units for _, offset, length in unit.ranges]
    assert spans[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(spans))
    assert spans[-1][0] + spans[-1][1] == len(body)
    assert sum(unit.size for unit in units) == len(body)


def test_ranges_decode_to_the_same_spans_as_the_bytes_of_a_compressed_copy(tmp_path):
    plain, packed = write_files(tmp_path, {"plain.pb": to_protobuf(MANY),
                                           "packed.pb.gz": gzipped(to_protobuf(MANY))})
    assert all(unit.records and not unit.ranges for unit in read_units(packed, LIMITS))
    assert decoded(plain, unit_bytes=2_000).equals(decoded(packed, unit_bytes=2_000))
    assert decoded(plain).num_rows == 60


def test_an_unknown_field_between_resources_splits_the_range_around_it(tmp_path):
    first, second = to_protobuf(request(agent_trace(1))), to_protobuf(request(agent_trace(2)))
    unknown = bytes([15 << 3 | 2, 3]) + b"abc"  # field 15, length-delimited, ignored
    (path,) = write_files(tmp_path, {"traces.pb": first + unknown + second})
    (unit,) = read_units(path, LIMITS)
    assert [(offset, length) for _, offset, length in unit.ranges] == [
        (0, len(first)), (len(first) + len(unknown), len(second))]
    assert decode_unit(unit)[0].num_rows == 6


def test_length_prefixed_plain_records_are_ranges_and_keep_their_numbers(tmp_path):
    reqs = [request(agent_trace(n)) for n in (1, 2, 3)]
    mixed = bytearray()
    for number, req in enumerate(reqs, start=1):
        body = to_protobuf(req)
        if number == 2:  # a zstd record among plain ones is read by the parent
            body = zstandard.ZstdCompressor().compress(body)
        mixed += struct.pack(">I", len(body)) + body
    (path,) = write_files(tmp_path, {"file-exporter.bin": bytes(mixed)})
    units = list(read_units(path, LIMITS))
    assert [[r for r, _, _ in u.ranges] or [r for r, _ in u.records] for u in units] == [[1], [2], [3]]
    assert decoded(path).column("source_batch").to_pylist() == [1] * 3 + [2] * 3 + [3] * 3
    (same,) = write_files(tmp_path, {"all-zstd.bin": to_length_prefixed(reqs, zstd_records=True)})
    assert decoded(path).equals(decoded(same))


def test_a_field_declared_beyond_the_end_of_the_file_is_reported_as_truncated(tmp_path):
    body = to_protobuf(MANY)
    (path,) = write_files(tmp_path, {"cut.pb": body[:-10]})
    with pytest.raises(Exception, match=r"protobuf is truncated: a field declares \d+ bytes but only"):
        list(read_units(path, LIMITS))


def test_a_file_that_shrinks_after_it_was_framed_fails_to_decode_with_a_reason(tmp_path):
    (path,) = write_files(tmp_path, {"traces.pb": to_protobuf(MANY)})
    units = list(read_units(path, LIMITS, unit_bytes=2_000))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(OtlpError, match="the file changed while it was being read"):
        decode_unit(units[-1])
    path.unlink()
    with pytest.raises(OtlpError, match="cannot read it again"):
        decode_unit(units[0])


@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_of_protobuf_files_by_range_stores_every_span_once(tmp_path, workers):
    files = write_files(tmp_path / "in", {"a.pb": to_protobuf(MANY),
                                          "b.bin": to_length_prefixed([request(agent_trace(30))])})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, *files, workers=workers)
    assert reasons(report) == {}
    assert report.spans_stored == 63
    again = ingest(store, *files, workers=workers)
    assert (again.spans_stored, again.duplicates) == (0, 63)
