"""Every file format ingest reads is detected from content and decodes to the same spans."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from ingest_support import FIXTURES, ingest, keep_content, reasons, rows, write_files
from otlp_builders import (
    SPAN_KIND_CLIENT,
    STATUS_ERROR,
    T0,
    agent_trace,
    event,
    exception_event,
    gzipped,
    hex_span,
    hex_trace,
    request,
    request_of,
    resource_spans,
    span,
    to_generic_json,
    to_json_lines,
    to_length_prefixed,
    to_otlp_json,
    to_protobuf,
    zstd_compressed,
)

from stepscope.config import IngestConfig
from stepscope.ingest.formats import read_units
from stepscope.ingest.otlp_decode import decode_unit
from stepscope.store import Store

LIMITS = IngestConfig()
REQUEST = request(agent_trace(1) + agent_trace(2, error=True))
SECOND = request(agent_trace(3))


def raw_of(path: Path, unit_bytes: int | None = None) -> pa.Table:
    units = list(read_units(path, LIMITS, **({"unit_bytes": unit_bytes} if unit_bytes else {})))
    tables = []
    for unit in units:
        table, rejected = decode_unit(unit)
        assert rejected == []
        tables.append(table)
    return pa.concat_tables(tables)


def without_source(table: pa.Table) -> pa.Table:
    return table.drop_columns(["source_file", "source_batch"])


ENCODINGS = {
    "otlp-json-pretty": lambda: to_otlp_json(REQUEST),
    "otlp-json-compact": lambda: to_otlp_json(REQUEST, indent=None),
    "generic-json-base64-ids-enum-names": lambda: to_generic_json(REQUEST),
    "generic-json-snake-case": lambda: to_generic_json(REQUEST, snake_case=True),
    "json-lines": lambda: to_json_lines([REQUEST]),
    "length-prefixed-proto": lambda: to_length_prefixed([REQUEST]),
    "length-prefixed-zstd-records": lambda: to_length_prefixed([REQUEST], zstd_records=True),
    "length-prefixed-zstd-json-records": lambda: to_length_prefixed([REQUEST], zstd_records=True,
                                                                    json_records=True),
    "gzip-protobuf": lambda: gzipped(to_protobuf(REQUEST)),
    "gzip-json-lines": lambda: gzipped(to_json_lines([REQUEST])),
    "zstd-protobuf": lambda: zstd_compressed(to_protobuf(REQUEST)),
    "zstd-length-prefixed": lambda: zstd_compressed(to_length_prefixed([REQUEST])),
    "utf8-bom-json": lambda: b"\xef\xbb\xbf" + to_otlp_json(REQUEST).encode(),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_decodes_to_the_protobuf_spans(tmp_path, encoding):
    (reference,) = write_files(tmp_path, {"reference.bin": to_protobuf(REQUEST)})
    # A misleading name on purpose: the content decides.
    (other,) = write_files(tmp_path, {"traces.pb": ENCODINGS[encoding]()})
    assert without_source(raw_of(other)).equals(without_source(raw_of(reference)))


def test_protobuf_spans_decode_to_these_raw_values(tmp_path):
    (path,) = write_files(tmp_path, {"export.json": to_protobuf(REQUEST)})
    raw = raw_of(path).to_pylist()
    assert len(raw) == 6
    llm = raw[1]
    assert llm["trace_id"] == "00000000000000000000000000000001"
    assert llm["span_id"] == "000000000000000c"
    assert llm["parent_span_id"] == "000000000000000b"
    assert llm["name"] == "chat gpt-4o-mini"
    assert llm["span_kind"] == SPAN_KIND_CLIENT
    assert llm["start_time_ns"] == T0 + 10_000_000
    assert llm["end_time_ns"] == T0 + 1_210_000_000
    assert dict(zip(llm["attr_keys"], llm["attr_values"], strict=True)) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": "412",
        "gen_ai.usage.output_tokens": "57",
        "gen_ai.response.finish_reasons": '["tool_calls"]',
        "gen_ai.request.temperature": "0.2",
    }
    assert llm["resource_keys"] == ["service.name", "service.version", "deployment.environment.name"]
    assert llm["resource_values"] == ["support-agent", "1.4.2", "production"]
    assert (llm["scope_name"], llm["scope_version"]) == ("opentelemetry.instrumentation.openai_v2", "2.4b0")
    assert (llm["source_file"], llm["source_batch"]) == (str(path), 1)
    root_of_failed = raw[3]
    assert root_of_failed["parent_span_id"] is None
    assert (root_of_failed["status_code"], root_of_failed["status_message"]) == (STATUS_ERROR, None)


def test_attribute_values_become_text_the_same_way_in_every_encoding(tmp_path):
    values = {"s": "plain", "empty": "", "yes": True, "no": False, "n": -42, "big": 2**63 - 1,
              "x": 0.5, "whole": 3.0, "tiny": 1e-7, "list": ["stop", 2, 1.5, True],
              "map": {"a": 1, "b": [None, "x"]}, "raw": b"\x00\xff", "unset": None}
    req = request([span("s", trace=1, span=1, attributes=values)])
    expected = {"s": "plain", "empty": "", "yes": "true", "no": "false", "n": "-42",
                "big": "9223372036854775807", "x": "0.5", "whole": "3.0", "tiny": "1e-07",
                "list": '["stop",2,1.5,true]', "map": '{"a":1,"b":[null,"x"]}', "raw": "AP8=",
                "unset": None}
    for name, content in {"a.pb": to_protobuf(req), "a.json": to_otlp_json(req),
                          "a.generic.json": to_generic_json(req)}.items():
        (path,) = write_files(tmp_path, {name: content})
        (row,) = raw_of(path).to_pylist()
        assert dict(zip(row["attr_keys"], row["attr_values"], strict=True)) == expected, name


def test_events_give_exception_first_token_and_content_attributes(tmp_path):
    events = [
        event("gen_ai.user.message", T0 + 1, {"content": "Where is my order?", "role": "user"}),
        event("First Token Stream Event", T0 + 300_000_000),
        exception_event("openai.RateLimitError", "Error code: 429", T0 + 400_000_000),
        event("gen_ai.choice", T0 + 500_000_000, {"index": 0, "finish_reason": "stop"}),
        exception_event("ValueError", "second exception is ignored", T0 + 600_000_000),
    ]
    req = request([span("chat", trace=1, span=1, events=events)])
    for name, content in {"e.pb": to_protobuf(req), "e.json": to_otlp_json(req)}.items():
        (path,) = write_files(tmp_path, {name: content})
        (row,) = raw_of(path).to_pylist()
        assert row["event_names"] == ["gen_ai.user.message", "First Token Stream Event", "exception",
                                      "gen_ai.choice", "exception"]
        assert (row["exception_type"], row["exception_message"]) == ("openai.RateLimitError",
                                                                     "Error code: 429")
        assert row["first_token_ns"] == T0 + 300_000_000
        assert list(zip(row["event_attr_keys"], row["event_attr_values"], strict=True)) == [
            ("gen_ai.user.message.content", "Where is my order?"),
            ("gen_ai.user.message.role", "user"),
            ("gen_ai.choice.index", "0"),
            ("gen_ai.choice.finish_reason", "stop"),
        ]


def test_otlp_json_ids_in_any_case_and_int64_as_numbers(tmp_path):
    doc = json.loads(to_otlp_json(request([span("s", trace=0xABCDEF, span=0xBEEF,
                                                 attributes={"n": 7})])))
    sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    sp["traceId"] = sp["traceId"].upper()
    sp["spanId"] = sp["spanId"].upper()
    sp["startTimeUnixNano"] = int(sp["startTimeUnixNano"])
    sp["attributes"][0]["value"]["intValue"] = 7
    sp["kind"] = "SPAN_KIND_SERVER"
    (path,) = write_files(tmp_path, {"mixed.json": json.dumps(doc)})
    (row,) = raw_of(path).to_pylist()
    assert (row["trace_id"], row["span_id"]) == ("00000000000000000000000000abcdef", "000000000000beef")
    assert row["start_time_ns"] == T0
    assert row["attr_values"] == ["7"]
    assert row["span_kind"] == 2


def test_json_lines_record_their_line_numbers(tmp_path):
    text = to_json_lines([REQUEST]) + "\n" + to_json_lines([SECOND])
    (path,) = write_files(tmp_path, {"collector-output": text})
    raw = raw_of(path)
    assert raw.column("source_batch").to_pylist() == [1] * 6 + [3] * 3


def test_length_prefixed_records_are_numbered(tmp_path):
    (path,) = write_files(tmp_path, {"file-exporter.bin": to_length_prefixed(
        [REQUEST, SECOND], zstd_records=True)})
    assert raw_of(path).column("source_batch").to_pylist() == [1] * 6 + [2] * 3


@pytest.mark.parametrize("shape", ["many-resources", "one-resource-one-scope", "two-scopes"])
def test_a_large_request_is_cut_into_valid_pieces_with_the_same_spans(tmp_path, shape):
    traces = [agent_trace(n) for n in range(1, 41)]
    spans = [s for t in traces for s in t]
    if shape == "many-resources":
        req = request_of(*(resource_spans(t) for t in traces))
    elif shape == "one-resource-one-scope":
        req = request(spans)
    else:
        req = request_of(resource_spans(spans[:60]))
        req.resource_spans[0].scope_spans.add().spans.extend(spans[60:])
        req.resource_spans[0].scope_spans[1].scope.name = "second"
    (path,) = write_files(tmp_path, {"big.pb": to_protobuf(req)})
    assert len(list(read_units(path, LIMITS, unit_bytes=2_000))) > 5
    assert raw_of(path, unit_bytes=2_000).equals(raw_of(path))
    assert raw_of(path).num_rows == 120


@pytest.mark.parametrize("package", ["openai-v2", "openai-v2-latest", "openinference", "traceloop"])
def test_real_instrumentation_payloads_store_identical_rows_from_protobuf_and_json(tmp_path, package):
    expected = json.loads((FIXTURES / "expected.json").read_text())["traces"][package]
    columns = "* EXCLUDE (ingested_at, source_file)"
    stored = {}
    for suffix in ("pb", "json"):
        store = Store.open(tmp_path / f"db-{suffix}", create=True)
        report = ingest(store, FIXTURES / f"{package}.traces.{suffix}", config=keep_content())
        assert report.rejected == []
        assert report.spans_stored == expected["span_count"]
        stored[suffix] = rows(store, columns)
    assert stored["pb"] == stored["json"]


def test_console_exporter_output_is_rejected_as_not_otlp(tmp_path):
    one_span = (FIXTURES / "console_exporter_output.json").read_text()
    second = one_span.replace("0x6133087aa1039ee5", "0x6133087aa1039ee6")
    paths = write_files(tmp_path, {"console.json": one_span, "console-two-spans.txt": one_span + second,
                                   "console-lines.jsonl": json.dumps(json.loads(one_span)) + "\n"})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, *paths)
    assert report.spans_stored == 0
    for name in ("console.json", "console-two-spans.txt", "console-lines.jsonl"):
        (reason,) = reasons(report)[name]
        assert reason.startswith("not OTLP: this is the OpenTelemetry SDK console exporter's output")
        assert "OTLPSpanExporter" in reason


def test_directories_are_read_recursively_and_stores_inside_skipped(tmp_path):
    write_files(tmp_path / "in", {"a/one.pb": to_protobuf(REQUEST), "a/b/two.jsonl": to_json_lines([SECOND]),
                                  ".hidden/ignored.txt": "not read"})
    store = Store.open(tmp_path / "in" / "store", create=True)
    report = ingest(store, tmp_path / "in")
    assert (report.files, report.spans_stored, report.rejected) == (2, 9, [])
    assert rows(store, "DISTINCT trace_id") == [(hex_trace(1),), (hex_trace(2),), (hex_trace(3),)]
    assert rows(store, "span_id", f"trace_id = '{hex_trace(3)}'") == [
        (hex_span(31),), (hex_span(32),), (hex_span(33),)]
