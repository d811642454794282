"""Worker processes store exactly what a single process stores, bad files included."""

from __future__ import annotations

import pytest
from ingest_support import ingest, keep_content, rows, write_files
from otlp_builders import (
    agent_trace,
    request,
    request_of,
    resource_spans,
    span,
    to_json_lines,
    to_length_prefixed,
    to_protobuf,
)

import stepscope.ingest.formats as formats
import stepscope.ingest.pipeline as pipeline
import stepscope.ingest.workers as worker_tasks
from stepscope.store import Store


@pytest.mark.slow
def test_two_workers_store_the_same_rows_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "UNIT_BYTES", 4_000)
    monkeypatch.setattr(pipeline, "TASKS_PER_POOL", 3)  # worker processes renewed as it goes
    files = {
        "big.pb": to_protobuf(request_of(*(resource_spans(agent_trace(n)) for n in range(1, 40)))),
        "lines.jsonl": to_json_lines([request(agent_trace(n)) for n in range(40, 60)]) + "oops\n",
        "records.bin": to_length_prefixed([request(agent_trace(n)) for n in range(60, 80)],
                                          zstd_records=True),
        "bad.pb": to_protobuf(request_of(*(resource_spans(agent_trace(n)) for n in range(80, 90)),
                                         resource_spans([span("x", trace=b"\x01", span=1)]))),
    }
    paths = write_files(tmp_path / "in", files)
    results = {}
    for workers in (1, 2):
        store = Store.open(tmp_path / f"db-{workers}", create=True)
        report = ingest(store, *paths, config=keep_content(), workers=workers)
        results[workers] = (report.summary() | {"seconds": None},
                            rows(store, "* EXCLUDE (ingested_at)"))
    assert results[2] == results[1]
    summary, stored = results[2]
    assert (summary["files"], summary["spans_stored"], summary["duplicates"]) == (4, 237, 0)
    assert [r["reason"] for r in summary["rejected"]] == [
        "line 21: invalid JSON at column 1: Expecting value",
        "span 'x': trace id has 1 bytes, expected 16",
    ]
    assert len(stored) == 237


def _segment_rows(store: Store) -> list[int]:
    return [s["rows"] for s in store.manifest()["segments"]]


@pytest.mark.slow
def test_each_worker_writes_its_tasks_into_one_large_segment(tmp_path, monkeypatch):
    """Not one small segment per task, which readers would pay for until compaction."""
    monkeypatch.setattr(formats, "UNIT_BYTES", 4_000)  # many small tasks
    monkeypatch.setattr(pipeline, "TASK_BYTES", 8_000)
    files = {f"part-{i}.pb": to_protobuf(request_of(*(resource_spans(agent_trace(n))
                                                    for n in range(i * 20 + 1, i * 20 + 21))))
             for i in range(4)}
    paths = write_files(tmp_path / "in", files)
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, *paths, workers=2)
    assert report.rejected == []
    assert len(_segment_rows(store)) <= 2
    assert sum(_segment_rows(store)) == report.spans_stored > 200

    # A worker completes a segment once it holds SEGMENT_ROWS rows, and every segment
    # still open when its pool stops (renewed, or at the end).
    monkeypatch.setattr(worker_tasks, "SEGMENT_ROWS", 60)
    monkeypatch.setattr(pipeline, "TASKS_PER_POOL", 6)
    store = Store.open(tmp_path / "db-small", create=True)
    again = ingest(store, *paths, workers=2)
    assert again.summary() | {"seconds": None} == report.summary() | {"seconds": None}
    sizes = _segment_rows(store)
    assert sum(sizes) == report.spans_stored
    assert len(sizes) > 2, sizes
    assert any(n >= 60 for n in sizes)
