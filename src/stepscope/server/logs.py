"""GenAI content events from OTLP logs: prompts and completions, attached to their spans.

Why logs: the official OpenAI instrumentation (`opentelemetry-instrumentation-openai-v2`)
sends message content not on the span but as log records named `gen_ai.system.message`,
`gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message` and
`gen_ai.choice` (newer releases: `gen_ai.client.inference.operation.details`), carrying
the trace and span id of the model call. Those records become rows of the store's
`content_events` dataset (`stepscope.schema.CONTENT_EVENT_COLUMNS`), keyed by trace and
span id; other log records are not stepscope's business and are acknowledged unstored.

The event name comes from the record's `event_name` field, else its `event.name`
attribute. The same privacy policy as spans applies, with the same rules
(`stepscope.ingest.privacy`): `redact` masks secrets and personal data in content and
attribute values, `keep` still masks secrets, `drop` stores no content at all.

Log volume is a few records per model call, so records are walked in Python; redaction
is still one column-wise pass per batch (`privacy.redact_values` over every text at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stepscope.ingest import privacy
from stepscope.ingest.wire import any_value_text, json_native
from stepscope.schema import CONTENT_EVENT_COLUMNS

EVENT_NAME_ATTRIBUTE = "event.name"
ROLE_OF_EVENT = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
    "gen_ai.choice": "assistant",
}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
#: Attribute keys that hold message content (left out under `[privacy] content = "drop"`).
CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion", "body.tool_calls", "body.message.tool_calls",
    "body.content", "body.message.content",
})

_ROW_FIELDS = ("trace_id", "span_id", "time_ns", "event_name", "role", "content",
               "attr_keys", "attr_values", "source_file")


def is_content_event(name: str) -> bool:
    return name in ROLE_OF_EVENT or name == DETAILS_EVENT or (
        name.startswith("gen_ai.") and name.endswith(".message"))


def content_events(payloads: Iterable[bytes], privacy_mode: str,
                   source: str) -> pa.Table | None:
    """Content events of many ExportLogsServiceRequest payloads, privacy applied.

    Returns a table with the columns of `CONTENT_EVENT_COLUMNS`, or None when the
    payloads hold no GenAI content event.
    """
    rows: dict[str, list[Any]] = {name: [] for name in _ROW_FIELDS}
    drop = privacy_mode == "drop"
    for payload in payloads:
        request = ExportLogsServiceRequest.FromString(payload)
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    _collect(rows, record, drop, source)
    if not rows["trace_id"]:
        return None
    _redact(rows, privacy_mode)
    n = len(rows["trace_id"])
    ingested = datetime.now(UTC).replace(tzinfo=None)
    columns = {
        "trace_id": pa.array(rows["trace_id"], pa.string()),
        "span_id": pa.array(rows["span_id"], pa.string()),
        "time_ns": pa.array(rows["time_ns"], pa.int64()),
        "event_name": pa.array(rows["event_name"], pa.string()),
        "role": pa.array(rows["role"], pa.string()),
        "content": pa.array(rows["content"], pa.string()),
        "attributes": pa.array(
            [list(zip(k, v, strict=True)) for k, v in zip(rows["attr_keys"], rows["attr_values"],
                                                          strict=True)],
            pa.map_(pa.string(), pa.string())),
        "source_file": pa.array(rows["source_file"], pa.string()),
        "ingested_at": pa.array([ingested] * n, pa.timestamp("us")),
    }
    return pa.table({c.name: columns[c.name] for c in CONTENT_EVENT_COLUMNS})


def _redact(rows: dict[str, list[Any]], mode: str) -> None:
    """Apply the privacy policy to every content text and attribute value, as one column."""
    contents = rows["content"]
    flat: list[str | None] = list(contents)
    for values in rows["attr_values"]:
        flat.extend(values)
    redacted = iter(privacy.redact_values(flat, mode))
    rows["content"] = [next(redacted) for _ in contents]
    rows["attr_values"] = [[next(redacted) for _ in values] for values in rows["attr_values"]]


def _collect(rows: dict[str, list[Any]], record: Any, drop: bool, source: str) -> None:
    attributes = {kv.key: any_value_text(kv.value) for kv in record.attributes}
    name = record.event_name or attributes.get(EVENT_NAME_ATTRIBUTE) or ""
    if not is_content_event(name) or not record.trace_id or not record.span_id:
        return
    role, content, body_fields = _read_body(name, record.body if record.HasField("body") else None)
    attributes.update(body_fields)
    if drop:
        attributes = {k: v for k, v in attributes.items() if k not in CONTENT_KEYS}
    keys = [k for k, v in attributes.items() if v is not None]
    rows["trace_id"].append(record.trace_id.hex())
    rows["span_id"].append(record.span_id.hex())
    rows["time_ns"].append(record.time_unix_nano or record.observed_time_unix_nano or None)
    rows["event_name"].append(name)
    rows["role"].append(role)
    rows["content"].append(None if drop else content)
    rows["attr_keys"].append(keys)
    rows["attr_values"].append([attributes[k] for k in keys])
    rows["source_file"].append(source)


def _read_body(name: str, body: AnyValue | None) -> tuple[str | None, str | None, dict[str, str]]:
    """Role, content text and the other body fields (as `body.*` attributes) of an event.

    Bodies are `{"content": ...}` for messages and `{"index", "finish_reason",
    "message": {"role", "content", "tool_calls"}}` for choices; a plain string body is the
    content itself.
    """
    role = ROLE_OF_EVENT.get(name)
    if body is None:
        return role, None, {}
    native = json_native(body)
    if not isinstance(native, dict):
        return role, _text(native), {}
    fields: dict[str, str] = {}
    content = native.get("content")
    message = native.get("message")
    if isinstance(message, dict):
        role = message.get("role") or role
        content = message.get("content", content)
        for key, value in message.items():
            if key not in ("role", "content"):
                fields[f"body.message.{key}"] = _text(value)
    role = native.get("role") or role
    for key, value in native.items():
        if key not in ("role", "content", "message"):
            fields[f"body.{key}"] = _text(value)
    return (str(role) if role is not None else None), _text(content), fields


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
