"""Publishing spooled requests: many requests, one append; a bad one costs only itself."""

from __future__ import annotations

import duckdb
from serve_harness import fixture, make_request

from stepscope.config import Config
from stepscope.server.batches import publish_batch
from stepscope.server.ingest_adapter import steps_from_requests
from stepscope.server.spool import KIND_LOGS, KIND_TRACES, Spool
from stepscope.store import Store


def test_a_corrupt_request_is_skipped_and_the_others_kept():
    payloads = [fixture("openai-v2.traces.pb"), b"\x0a\x05garbage", fixture("traceloop.traces.pb")]
    steps, problems = steps_from_requests(duckdb.connect(), payloads, Config(), "otlp-http",
                                          first_batch=41)
    assert steps.num_rows == 20
    assert problems == [
        "request 42: corrupt or truncated protobuf: not a valid ExportTraceServiceRequest"]
    assert sorted(set(steps.column("source_batch").to_pylist())) == [41, 43]
    assert set(steps.column("source_file").to_pylist()) == {"otlp-http"}


def test_one_batch_of_spool_files_is_one_segment_per_dataset(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=100_000_000)
    for number in range(1, 6):
        spool.append(KIND_TRACES, make_request(number, spans=4).SerializeToString())
        spool.seal()
    spool.append(KIND_LOGS, fixture("openai-v2.logs.pb"))
    files = spool.seal()
    assert len(files) == 6
    store = Store.open(tmp_path / "db", create=True)
    result = publish_batch(store, duckdb.connect(), files, Config(), "otlp-http")
    assert (result.requests, result.spans_stored, result.events_stored) == (6, 20, 13)
    manifest = store.manifest()
    assert len(manifest["segments"]) == 1
    assert len(manifest["datasets"]["content_events"]) == 1
    again = publish_batch(store, duckdb.connect(), files, Config(), "otlp-http")
    assert (again.spans_stored, again.spans_duplicate, again.events_stored) == (0, 20, 0)
    spool.close()
