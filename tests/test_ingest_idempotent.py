"""The same spans arriving again change nothing and count as duplicates."""

from __future__ import annotations

from ingest_support import ingest, rows, write_files
from otlp_builders import (
    agent_trace,
    gzipped,
    request,
    to_json_lines,
    to_length_prefixed,
    to_otlp_json,
    to_protobuf,
)

from stepscope.store import Store

COLUMNS = "trace_id, span_id, name, source_file, source_batch"


def test_same_file_twice_stores_once(tmp_path):
    (path,) = write_files(tmp_path, {"a.pb": to_protobuf(request(agent_trace(1) + agent_trace(2)))})
    store = Store.open(tmp_path / "db", create=True)
    first = ingest(store, path)
    before = rows(store, COLUMNS)
    segments = store.segment_files()
    second = ingest(store, path)
    assert (first.spans_stored, first.duplicates) == (6, 0)
    assert (second.spans_stored, second.duplicates, second.rejected) == (0, 6, [])
    assert rows(store, COLUMNS) == before
    assert store.segment_files() == segments


def test_same_spans_inside_other_files_and_encodings_are_duplicates(tmp_path):
    spans = agent_trace(1) + agent_trace(2)
    first, again_json, again_lines = write_files(tmp_path, {
        "first.pb": to_protobuf(request(spans)),
        "again.json.gz": gzipped(to_otlp_json(request(spans))),
        "again.bin": to_length_prefixed([request(spans[:3]), request(spans[3:])], zstd_records=True),
    })
    store = Store.open(tmp_path / "db", create=True)
    ingest(store, first)
    before = rows(store, COLUMNS)
    report = ingest(store, again_json, again_lines)
    assert (report.spans_stored, report.duplicates) == (0, 12)
    assert rows(store, COLUMNS) == before
    assert {r[3] for r in before} == {str(first)}


def test_overlapping_file_stores_only_new_spans(tmp_path):
    old, overlapping = write_files(tmp_path, {
        "old.jsonl": to_json_lines([request(agent_trace(1))]),
        "overlap.jsonl": to_json_lines([request(agent_trace(1)), request(agent_trace(2))]),
    })
    store = Store.open(tmp_path / "db", create=True)
    ingest(store, old)
    report = ingest(store, overlapping)
    assert (report.spans_stored, report.duplicates) == (3, 3)
    assert [(r[0][-1], r[3].rsplit("/", 1)[1], r[4]) for r in rows(store, COLUMNS)] == [
        ("1", "old.jsonl", 1), ("1", "old.jsonl", 1), ("1", "old.jsonl", 1),
        ("2", "overlap.jsonl", 2), ("2", "overlap.jsonl", 2), ("2", "overlap.jsonl", 2),
    ]


def test_duplicates_within_one_run_are_counted_once(tmp_path):
    spans = agent_trace(1)
    paths = write_files(tmp_path, {"a.pb": to_protobuf(request(spans)),
                                   "b.json": to_otlp_json(request(spans))})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, *paths)
    assert (report.spans_stored, report.duplicates) == (3, 3)
    assert len(rows(store)) == 3
