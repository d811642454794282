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
