"""Attribute lists that break the map rules (a key twice) still give valid, storable rows."""

from __future__ import annotations

from normalise_helpers import attrs, config, steps_table
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from otlp_builders import any_value, request, span

from stepscope.store import Store


def repeated_key_spans() -> list:
    first = span("chat", trace=1, span=1, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "input.value": "hello"})
    first.attributes.append(KeyValue(key="gen_ai.request.model", value=any_value("other")))
    first.attributes.append(KeyValue(key="input.value", value=any_value("again")))
    second = span("tool", trace=1, span=2, parent=1, attributes={"gen_ai.tool.name": "kb"})
    return [first, second]


def test_a_repeated_key_keeps_its_first_value_and_the_rows_store(tmp_path):
    req = request(repeated_key_spans())
    req.resource_spans[0].resource.attributes.append(
        KeyValue(key="service.name", value=any_value("shadow")))
    table = steps_table(req)
    chat, tool = table.to_pylist()
    assert chat["request_model"] == "gpt-4o-mini"
    assert attrs(chat) == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                           "input.value": "hello"}
    assert dict(chat["resource_attributes"])["service.name"] == "support-agent"
    assert chat["service_name"] == "support-agent"
    assert attrs(tool) == {"gen_ai.tool.name": "kb"}
    result = Store.open(tmp_path / "s", create=True).append_steps(table)
    assert (result.stored, result.duplicates) == (2, 0)


def test_drop_with_repeated_keys():
    table = steps_table(request(repeated_key_spans()), config(privacy={"content": "drop"}))
    chat = table.to_pylist()[0]
    assert attrs(chat) == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    assert chat["input_content"] is None
