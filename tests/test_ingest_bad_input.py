"""Bad input is rejected with one line naming the file and why; good files beside it are kept.

Every case ingests the bad file next to a good one: the good spans are stored, the bad
file stores nothing, and the CLI exits 1.
"""

from __future__ import annotations

import gzip
import json
import tempfile

import pytest
import zstandard
from click.testing import CliRunner
from ingest_support import FIXTURES, ingest, reasons, rows, write_files
from otlp_builders import (
    agent_trace,
    hex_trace,
    request,
    request_of,
    resource_spans,
    span,
    to_json_lines,
    to_otlp_json,
    to_protobuf,
)

import stepscope.ingest.formats as formats
import stepscope.ingest.json_documents as json_documents
import stepscope.ingest.pipeline as pipeline
from stepscope.cli import cli
from stepscope.config import config_from_dict
from stepscope.store import Store

GOOD = to_protobuf(request(agent_trace(1)))
ONE_SPAN = request([span("café", trace=2, span=1, attributes={"k": "payload"})])


def _utf8_broken_json() -> bytes:
    text = to_otlp_json(ONE_SPAN)
    return text.encode().replace(b"payload", b"payl\xe9ad")


CASES = {
    "truncated.pb": (GOOD[:-7], "protobuf is truncated: a field declares 963 bytes but only 956 remain "
                                "(not a valid ExportTraceServiceRequest)"),
    "corrupt.pb": (b"\x0a\x05\xff\xff\xff\xff\xff",
                   "corrupt or truncated protobuf: not a valid ExportTraceServiceRequest"),
    "corrupt-resource.pb": (GOOD[:40] + bytes([GOOD[40] ^ 0x5A]) + GOOD[41:],
                            "corrupt protobuf: a resource is not valid"),
    "invalid.json": ('{"resourceSpans": [}', "invalid JSON at line 1 column 20: Expecting value"),
    "wrong-shape.json": ('{"resourceSpans": {"scopeSpans": []}}',
                         "resourceSpans: expected a list, got an object"),
    "not-traces.json": ('{"spans": []}', "not an OTLP trace request: expected a top-level "
                                         "'resourceSpans' list, found keys: spans"),
    "metrics.json": ('{"resourceMetrics": []}',
                     "not OTLP traces: this is an OTLP metrics request (resourceMetrics); send traces"),
    "span-not-object.json": ('{"resourceSpans": [{"scopeSpans": [{"spans": [42]}]}]}',
                             "resourceSpans[0].scopeSpans[0].spans[0]: expected an object, "
                             "got the number 42"),
    "short-trace-id.pb": (to_protobuf(request([span("chat", trace=b"\x01" * 15, span=1)])),
                          "span 'chat': trace id has 15 bytes, expected 16"),
    "long-span-id.pb": (to_protobuf(request([span("chat", trace=1, span=b"\x01" * 9)])),
                        "span 'chat': span id has 9 bytes, expected 8"),
    "short-trace-id.json": (to_otlp_json(request([span("chat", trace=b"\x01" * 15, span=1)])),
                            "resourceSpans[0].scopeSpans[0].spans[0].traceId (span 'chat'): "
                            "'010101010101010101010101010101' is not a 16-byte id "
                            "(32 hex characters, or base64)"),
    "zero-trace-id.pb": (to_protobuf(request([span("chat", trace=bytes(16), span=1)])),
                         "span 'chat': trace id is all zeros, which OTLP defines as invalid"),
    "invalid-utf8.json": (_utf8_broken_json(), "invalid UTF-8 at byte 1145"),
    "invalid-utf8-attribute.pb": (to_protobuf(ONE_SPAN).replace(b"payload", b"payl\xe9ad"),
                                  "corrupt protobuf: attribute value is not valid UTF-8 (byte 4)"),
    "zero-bytes.pb": (b"", "empty file (0 bytes)"),
    "notes.txt": ("hello\nworld\n", "not OTLP: text that is neither OTLP/JSON nor JSON Lines "
                                    "(starts with 'hello')"),
    "image.png": (b"\x89PNG\r\n\x1a\n" + bytes(64),
                  "not OTLP: unrecognised binary content (starts with 89 50 4e 47 0d 0a 1a 0a)"),
    "logs.pb": ((FIXTURES / "openai-v2.logs.pb").read_bytes(),
                "not OTLP traces: this protobuf is an OTLP logs export (ExportLogsServiceRequest); "
                "send traces"),
    "bad-timestamp.json": (to_otlp_json(ONE_SPAN).replace('"startTimeUnixNano": "',
                                                          '"startTimeUnixNano": "x'),
                           "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an "
                           "integer (a number or a decimal string), got the string 'x1794301200000000000'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_rejected_with_its_reason_and_the_good_file_kept(tmp_path, name):
    content, reason = CASES[name]
    good, bad = write_files(tmp_path / "in", {"good.pb": GOOD, name: content})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, good, bad)
    assert report.rejected == [{"file": str(bad), "reason": reason}]
    assert report.files == 2
    assert report.spans_stored == 3
    assert rows(store, "DISTINCT trace_id") == [(hex_trace(1),)]


def test_cli_exits_1_when_a_file_is_rejected(tmp_path):
    good, bad = write_files(tmp_path, {"good.pb": GOOD, "bad.pb": GOOD[:-1]})
    result = CliRunner().invoke(cli, ["ingest", str(good), str(bad), "--db", str(tmp_path / "db")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"rejected {bad}: protobuf is truncated")


def test_gzip_bomb_is_refused_before_it_expands(tmp_path):
    bomb = gzip.compress(b'{"resourceSpans": [' + b" " * 20_000_000 + b"]}")
    good, bad = write_files(tmp_path, {"good.pb": GOOD, "bomb.json.gz": bomb})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, good, bad)
    (reason,) = reasons(report)["bomb.json.gz"]
    assert reason.startswith("gzip data expands more than 200x (")
    assert reason.endswith("[ingest] max_decompression_ratio); refused as a possible decompression bomb")
    assert report.spans_stored == 3


def test_decompressed_size_limit_from_configuration(tmp_path):
    lines = to_json_lines([request(agent_trace(n)) for n in range(400)]).encode()
    big = zstandard.ZstdCompressor().compress(lines)
    (path,) = write_files(tmp_path, {"big.jsonl.zst": big})
    config = config_from_dict({"ingest": {"max_decompressed_bytes": 200_000,
                                          "max_decompression_ratio": 1_000_000}})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, path, config=config)
    assert report.rejected == [{"file": str(path), "reason": (
        "zstd data expands beyond 195.3 KiB ([ingest] max_decompressed_bytes); "
        "refused as a possible decompression bomb")}]
    assert report.spans_stored == 0


def test_bad_json_lines_are_rejected_alone_and_the_other_lines_kept(tmp_path):
    lines = [to_otlp_json(request(agent_trace(1)), indent=None),
             '{"resourceSpans": [',
             to_otlp_json(request([span("chat", trace=2, span=1, parent=b"\x01\x02")]), indent=None),
             to_otlp_json(request(agent_trace(3)), indent=None)]
    (path,) = write_files(tmp_path, {"collector.jsonl": "\n".join(lines) + "\n"})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, path)
    assert report.rejected == [
        {"file": str(path), "reason": "line 2: invalid JSON at column 20: Expecting value"},
        {"file": str(path), "reason": "line 3: resourceSpans[0].scopeSpans[0].spans[0].parentSpanId "
                                      "(span 'chat'): '0102' is not a 8-byte id "
                                      "(16 hex characters, or base64)"},
    ]
    assert rows(store, "DISTINCT trace_id, source_batch") == [(hex_trace(1), 1), (hex_trace(3), 4)]


def test_nothing_of_a_large_rejected_file_is_written(tmp_path, monkeypatch):
    """The bad span comes last, after many units of the file were decoded and written out
    as pending segments, some of them shared with the good file that follows."""
    monkeypatch.setattr(formats, "UNIT_BYTES", 8_000)
    monkeypatch.setattr(pipeline, "TASK_BYTES", 16_000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    traces = [agent_trace(n) for n in range(10, 60)]
    bad_tail = resource_spans([span("last", trace=b"\x07" * 15, span=1)])
    big_bad = to_protobuf(request_of(*(resource_spans(t) for t in traces), bad_tail))
    big_good = to_protobuf(request_of(*(resource_spans(agent_trace(n)) for n in range(60, 100))))
    bad, good = write_files(tmp_path, {"big-bad.pb": big_bad, "big-good.pb": big_good})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, bad, good)
    assert report.rejected == [{"file": str(bad),
                                "reason": "span 'last': trace id has 15 bytes, expected 16"}]
    assert report.spans_stored == 120
    stored = rows(store, "trace_id")
    assert (len(stored), len(set(stored)), min(stored)) == (120, 40, (hex_trace(60),))
    assert list((tmp_path / "db").rglob("*.tmp")) == []
    assert list((tmp_path / "db").rglob(".pending-*")) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_json_document_too_large_to_parse_whole_is_refused_with_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(json_documents, "MAX_JSON_DOCUMENT_BYTES", 1_000)
    (path,) = write_files(tmp_path, {"big.json": to_otlp_json(request(agent_trace(1)))})
    report = ingest(Store.open(tmp_path / "db", create=True), path)
    assert reasons(report) == {"big.json": [
        "one OTLP/JSON document of more than 1000 bytes; write JSON Lines (one request per line, "
        "as the Collector's file exporter does) or protobuf instead"]}


def test_rejection_reasons_are_one_line(tmp_path):
    paths = write_files(tmp_path, {name: content for name, (content, _) in CASES.items()})
    report = ingest(Store.open(tmp_path / "db", create=True), *paths)
    assert len(report.rejected) == len(CASES)
    assert all("\n" not in r["reason"] for r in report.rejected)
    assert json.loads(json.dumps(report.summary()))["rejected"] == report.rejected


def test_a_bad_small_file_among_many_decoded_together_is_rejected_alone(tmp_path):
    files = {f"batch-{n:02d}.pb": to_protobuf(request(agent_trace(n))) for n in range(1, 31)}
    files["batch-15.pb"] = to_protobuf(request([span("chat", trace=15, span=b"\x01" * 7)]))
    paths = write_files(tmp_path, files)
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, *paths)
    assert report.rejected == [{"file": str(tmp_path / "batch-15.pb"),
                                "reason": "span 'chat': span id has 7 bytes, expected 8"}]
    stored = rows(store, "trace_id, source_file")
    assert len(stored) == 87
    assert all(source.endswith(f"batch-{int(trace, 16):02d}.pb") for trace, source in stored)
