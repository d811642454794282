"""`ingest_request`: one OTLP/HTTP request body, stored whole or rejected whole."""

from __future__ import annotations

from ingest_support import rows
from otlp_builders import agent_trace, request, span, to_generic_json, to_otlp_json, to_protobuf

from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_request
from stepscope.store import Store


def test_protobuf_and_json_bodies_are_stored_with_their_source(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    config = Config()
    first = ingest_request(store, to_protobuf(request(agent_trace(1))), "application/x-protobuf",
                           config, "otlp-http 127.0.0.1:4318", batch=7)
    second = ingest_request(store, to_otlp_json(request(agent_trace(2))).encode(),
                            "application/json; charset=utf-8", config, "otlp-http 127.0.0.1:4318")
    assert [(r.files, r.spans_stored, r.duplicates, r.rejected) for r in (first, second)] == [
        (1, 3, 0, []), (1, 3, 0, [])]
    assert {r[1:] for r in rows(store, "trace_id, source_file, source_batch")} == {
        ("otlp-http 127.0.0.1:4318", 7), ("otlp-http 127.0.0.1:4318", 1)}


def test_a_repeated_request_is_all_duplicates(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    body = to_generic_json(request(agent_trace(1))).encode()
    ingest_request(store, body, "application/json", Config(), "receiver")
    again = ingest_request(store, body, "application/json", Config(), "receiver")
    assert (again.spans_stored, again.duplicates) == (0, 3)


def test_bad_bodies_are_rejected_whole(tmp_path):
    store = Store.open(tmp_path / "db", create=True)
    mixed = request([*agent_trace(1), span("x", trace=1, span=b"\x01\x02")])
    cases = [
        (to_protobuf(mixed), "application/x-protobuf", "span 'x': span id has 2 bytes, expected 8"),
        (b"{", "application/json", "invalid JSON at line 1 column 2: "
                                   "Expecting property name enclosed in double quotes"),
        (b"hello", "text/plain", "unsupported content type 'text/plain': OTLP/HTTP sends "
                                 "application/x-protobuf or application/json"),
    ]
    for body, content_type, reason in cases:
        report = ingest_request(store, body, content_type, Config(), "receiver")
        assert report.rejected == [{"file": "receiver", "reason": reason}]
        assert report.spans_stored == 0
    assert rows(store) == []
