"""GenAI content events from OTLP logs: which records, which fields, which privacy."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from serve_harness import fixture

from stepscope.server.logs import content_events

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")
SECRET_TEXT = "Mail jane.doe@example.com, key sk-abcdefghijklmnopqrstuvwx"


def _kvlist(**fields: AnyValue) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v)
                                                      for k, v in fields.items()]))


def _text(value: str) -> AnyValue:
    return AnyValue(string_value=value)


def _request(*records: LogRecord) -> bytes:
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[
        ScopeLogs(log_records=list(records))])]).SerializeToString()


def _records() -> bytes:
    user = LogRecord(time_unix_nano=1_000, trace_id=TRACE, span_id=SPAN,
                     event_name="gen_ai.user.message", body=_kvlist(content=_text(SECRET_TEXT)))
    # Older instrumentations name the event in an attribute instead of the field.
    choice = LogRecord(
        observed_time_unix_nano=2_000, trace_id=TRACE, span_id=SPAN,
        attributes=[KeyValue(key="event.name", value=_text("gen_ai.choice"))],
        body=_kvlist(index=AnyValue(int_value=0), finish_reason=_text("stop"),
                     message=_kvlist(role=_text("assistant"), content=_text("Sure."))))
    unrelated = LogRecord(time_unix_nano=3_000, trace_id=TRACE, span_id=SPAN,
                          body=_text("GET /health 200"))
    unattached = LogRecord(time_unix_nano=4_000, event_name="gen_ai.user.message",
                           body=_kvlist(content=_text("no span to attach to")))
    return _request(user, choice, unrelated, unattached)


def test_content_events_are_read_from_the_field_or_the_attribute():
    table = content_events([_records()], "redact", "otlp-http")
    rows = table.select(["trace_id", "span_id", "time_ns", "event_name", "role", "content",
                         "attributes", "source_file"]).to_pylist()
    assert rows == [
        {"trace_id": TRACE.hex(), "span_id": SPAN.hex(), "time_ns": 1_000,
         "event_name": "gen_ai.user.message", "role": "user",
         "content": "Mail [REDACTED:email], key [REDACTED:api_key]", "attributes": [],
         "source_file": "otlp-http"},
        {"trace_id": TRACE.hex(), "span_id": SPAN.hex(), "time_ns": 2_000,
         "event_name": "gen_ai.choice", "role": "assistant", "content": "Sure.",
         "attributes": [("event.name", "gen_ai.choice"), ("body.index", "0"),
                        ("body.finish_reason", "stop")],
         "source_file": "otlp-http"},
    ]


def test_keep_still_masks_secrets_and_drop_stores_no_content():
    kept = content_events([_records()], "keep", "otlp-http").column("content").to_pylist()
    assert kept == ["Mail jane.doe@example.com, key [REDACTED:api_key]", "Sure."]
    dropped = content_events([_records()], "drop", "otlp-http")
    assert dropped.column("content").to_pylist() == [None, None]
    assert dropped.column("role").to_pylist() == ["user", "assistant"]


def test_the_official_instrumentation_log_payload():
    table = content_events([fixture("openai-v2.logs.pb")], "redact", "x")
    assert table.num_rows == 13
    assert sorted(set(zip(table.column("event_name").to_pylist(),
                          table.column("role").to_pylist(), strict=True))) == [
        ("gen_ai.choice", "assistant"), ("gen_ai.system.message", "system"),
        ("gen_ai.user.message", "user")]
    assert all(t.as_py() for t in table.column("content"))
    assert content_events([_request()], "redact", "x") is None
