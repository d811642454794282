"""The committed instrumentation payloads decode and say what expected.json says they say.

Ingest tests rely on tests/fixtures/instrumentation/expected.json as ground truth for
real OTLP payloads; these tests keep the two in step and check that the OTLP/JSON copies
follow the OTLP/JSON encoding rules and carry exactly the protobuf payload's content.
Only opentelemetry-proto is needed, not the instrumentation packages.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict, ParseError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

FIXTURES = Path(__file__).parent / "fixtures" / "instrumentation"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
TRACE_STEMS = sorted(EXPECTED["traces"])
ENCODINGS = ["pb", "json"]
ID_LENGTHS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
DECIMAL = re.compile(r"^-?[0-9]+$")
LOWER_HEX = re.compile(r"^[0-9a-f]+$")

#: Every key that could hold a value the expectations say is absent (conventions.md §5).
ABSENT_VALUE_KEYS = {
    "response_model": ["gen_ai.response.model", "llm.model_name", "embedding.model_name",
                       "llm.response.model_name"],
    "input_tokens": ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                     "llm.token_count.prompt", "llm.usage.prompt_tokens"],
    "output_tokens": ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "llm.usage.completion_tokens"],
    "cached_tokens": ["gen_ai.usage.cache_read.input_tokens",
                      "gen_ai.usage.cache_read_input_tokens",
                      "llm.token_count.prompt_details.cache_read"],
}


def plain(value: AnyValue) -> Any:
    """An attribute value as a Python value (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: plain(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(span: Span) -> dict[str, Any]:
    return {attribute.key: plain(attribute.value) for attribute in span.attributes}


def load_pb(stem: str) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString((FIXTURES / f"{stem}.traces.pb").read_bytes())


def _ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode()
            if key in ID_LENGTHS
            else _ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    return node


def load_json(stem: str) -> ExportTraceServiceRequest:
    """Decode the OTLP/JSON copy: hex ids back to the base64 protobuf's JSON mapping wants."""
    document = json.loads((FIXTURES / f"{stem}.traces.json").read_text())
    return ParseDict(_ids_to_base64(document), ExportTraceServiceRequest())


def load(stem: str, encoding: str) -> ExportTraceServiceRequest:
    return load_pb(stem) if encoding == "pb" else load_json(stem)


def spans_by_id(request: ExportTraceServiceRequest) -> dict[str, tuple[str, Span]]:
    """Map hex span id to (instrumentation scope name, span)."""
    found = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found[span.span_id.hex()] = (scope_spans.scope.name, span)
    return found


def stated_value(span_attributes: dict[str, Any], key: str) -> Any:
    """The value a source key states; *.invocation_parameters holds the model in its JSON."""
    if key.endswith("invocation_parameters"):
        return json.loads(span_attributes[key])["model"]
    return span_attributes[key]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_span_trace_and_service_counts(stem: str, encoding: str) -> None:
    expected = EXPECTED["traces"][stem]
    request = load(stem, encoding)
    spans = spans_by_id(request)

    assert len(spans) == expected["span_count"]
    assert len({span.trace_id for _, span in spans.values()}) == expected["trace_count"]
    assert sorted({scope for scope, _ in spans.values()}) == sorted(expected["scopes"])
    [resource_spans_service] = {
        plain(attribute.value)
        for resource_spans in request.resource_spans
        for attribute in resource_spans.resource.attributes
        if attribute.key == "service.name"
    }
    assert resource_spans_service == expected["service_name"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_root_spans_carry_workflow_outcome_tenant_session_user(stem: str, encoding: str) -> None:
    spans = spans_by_id(load(stem, encoding))
    for root in EXPECTED["traces"][stem]["roots"]:
        _, span = spans[root["span_id"]]
        stated = attributes(span)
        assert span.trace_id.hex() == root["trace_id"]
        assert span.parent_span_id == b""
        assert span.name == root["name"]
        assert stated["gen_ai.workflow.name"] == root["workflow"]
        assert stated["task.outcome"] == root["task_outcome"]
        assert stated["tenant.id"] == root["tenant_id"]
        assert stated["session.id"] == root["session_id"]
        assert stated["user.id"] == root["user_id"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_tool_spans(stem: str, encoding: str) -> None:
    spans = spans_by_id(load(stem, encoding))
    for tool in EXPECTED["traces"][stem]["tool_calls"]:
        _, span = spans[tool["span_id"]]
        stated = attributes(span)
        assert span.name == tool["name"]
        assert span.parent_span_id.hex() == tool["parent_span_id"]
        assert stated["gen_ai.operation.name"] == "execute_tool"
        assert stated["gen_ai.tool.name"] == tool["tool_name"]
        assert stated["gen_ai.tool.call.id"] == tool["tool_call_id"]
        assert span.status.code == tool["status_code"]
        assert stated.get("error.type") == tool["error_type"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_model_call_spans_state_expected_models_tokens_and_provider(
    stem: str, encoding: str
) -> None:
    spans = spans_by_id(load(stem, encoding))
    model_calls = EXPECTED["traces"][stem]["model_calls"]
    assert [call["call"] for call in model_calls] == list(EXPECTED["workload"])

    for call in model_calls:
        _, span = spans[call["span_id"]]
        stated = attributes(span)
        assert span.name == call["name"], call["call"]
        assert span.kind == call["kind"], call["call"]
        assert span.status.code == call["status_code"], call["call"]
        assert span.parent_span_id.hex() == call["parent_span_id"], call["call"]
        for field, key in call["source_keys"].items():
            if call[field] is None:
                assert key is None
                present = [k for k in ABSENT_VALUE_KEYS[field] if k in stated]
                assert present == [], f"{call['call']}: {field} expected absent"
            else:
                assert stated_value(stated, key) == call[field], f"{call['call']}: {field}"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_failed_model_calls_state_their_error(stem: str, encoding: str) -> None:
    spans = spans_by_id(load(stem, encoding))
    failed = [call for call in EXPECTED["traces"][stem]["model_calls"] if call["error"]]
    assert [call["error"]["http_status"] for call in failed] == [429, 500]

    for call in failed:
        error = call["error"]
        _, span = spans[call["span_id"]]
        exception_types = [
            attributes_of_event["exception.type"]
            for event in span.events
            if event.name == "exception"
            for attributes_of_event in [{a.key: plain(a.value) for a in event.attributes}]
        ]
        assert span.status.code == Status.STATUS_CODE_ERROR
        assert span.status.message == error["status_message"]
        assert f"Error code: {error['http_status']}" in span.status.message
        assert attributes(span).get("error.type") == error["error_type"]
        assert exception_types == ([error["exception_type"]] if error["exception_type"] else [])


def test_successful_calls_match_what_the_fake_api_answered() -> None:
    """Where an instrumentation reports a value, it is the value the API sent back."""
    for stem in TRACE_STEMS:
        for call in EXPECTED["traces"][stem]["model_calls"]:
            truth = EXPECTED["workload"][call["call"]]
            assert call["request_model"] == truth["request_model"], (stem, call["call"])
            assert call["operation"] == truth["operation"], (stem, call["call"])
            if call["error"]:
                assert call["error"]["http_status"] == truth["http_status"]
                continue
            for field in ("input_tokens", "output_tokens", "cached_tokens"):
                if call[field] is None:
                    continue
                if truth[field] is None:
                    # Traceloop states 0 cached tokens where the API reported none (embeddings).
                    assert call[field] == 0, (stem, call["call"], field)
                else:
                    assert call[field] == truth[field], (stem, call["call"], field)


def _walk(node: Any, path: str = "$"):
    """Yield (path, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")


@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_json_payload_follows_otlp_json_encoding_rules(stem: str) -> None:
    document = json.loads((FIXTURES / f"{stem}.traces.json").read_text())
    assert list(document) == ["resourceSpans"]
    spans = [
        span
        for resource_spans in document["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]
    assert len(spans) == EXPECTED["traces"][stem]["span_count"]
    for span in spans:
        for key, length in ID_LENGTHS.items():
            if key in span:
                assert LOWER_HEX.match(span[key]) and len(span[key]) == length, (key, span[key])
        assert isinstance(span["kind"], int)
        assert isinstance(span["status"].get("code", 0), int)
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            assert isinstance(span[key], str) and DECIMAL.match(span[key])
        for event in span.get("events", []):
            assert isinstance(event["timeUnixNano"], str) and DECIMAL.match(event["timeUnixNano"])

    int_values = 0
    for path, key, value in _walk(document):
        assert "_" not in key, f"{path}.{key} is not lowerCamelCase"
        if key == "intValue":
            int_values += 1
            assert isinstance(value, str) and DECIMAL.match(value), (path, value)
    assert int_values > 0  # token counts are int attributes in every payload


@pytest.mark.parametrize("stem", TRACE_STEMS)
def test_json_payload_carries_exactly_the_protobuf_payload(stem: str) -> None:
    assert load_json(stem) == load_pb(stem)


def test_openai_v2_log_events_belong_to_its_chat_spans() -> None:
    expected = EXPECTED["logs"]["openai-v2"]
    request = ExportLogsServiceRequest.FromString((FIXTURES / expected["file"]).read_bytes())
    spans = spans_by_id(load_pb("openai-v2"))
    records = [
        (scope_logs.scope.name, record)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    assert len(records) == expected["record_count"]
    assert {scope for scope, _ in records} == {expected["scope"]}

    names_by_span: dict[str, list[str]] = {}
    for _, record in records:
        _, span = spans[record.span_id.hex()]
        assert record.trace_id == span.trace_id
        assert {a.key: plain(a.value) for a in record.attributes} == {"gen_ai.system": "openai"}
        assert record.body.WhichOneof("value") == "kvlist_value"
        names_by_span.setdefault(record.span_id.hex(), []).append(record.event_name)
    assert names_by_span == {
        entry["span_id"]: entry["event_names"] for entry in expected["records_by_call"]
    }


def test_console_exporter_output_is_not_otlp() -> None:
    """The negative fixture: the SDK's console JSON must not pass for OTLP/JSON."""
    text = (FIXTURES / "console_exporter_output.json").read_text()
    document = json.loads(text)
    assert "resourceSpans" not in document
    assert document["context"]["span_id"] == EXPECTED["not_otlp"][
        "console_exporter_output.json"]["span_id"]
    assert document["kind"] == "SpanKind.CLIENT"
    assert document["status"]["status_code"] == "ERROR"
    with pytest.raises(ParseError):
        ParseDict(document, ExportTraceServiceRequest())


def test_every_payload_is_described_and_provenance_recorded() -> None:
    described = {"expected.json", "versions.json", "console_exporter_output.json"}
    for stem in TRACE_STEMS:
        described.update(EXPECTED["traces"][stem]["files"])
    described.update(entry["file"] for entry in EXPECTED["logs"].values())
    payloads = {p.name for p in FIXTURES.iterdir() if p.suffix in (".pb", ".json")}
    assert payloads == described

    versions = json.loads((FIXTURES / "versions.json").read_text())
    assert sorted(versions["runs"]) == TRACE_STEMS
    for run in versions["runs"].values():
        assert {"openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"} <= set(
            run["packages"]
        )
        for capture in run["captured"]:
            assert capture["content_type"] == "application/x-protobuf"
            assert capture["content_encoding"] is None
            assert (FIXTURES / capture["file"]).stat().st_size == capture["bytes"]
