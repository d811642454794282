"""The bulk attribute decoder gives exactly what the generated protobuf classes give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from otlp_builders import any_value

from stepscope.ingest.wire import WireError, any_value_text, decode_key_values

scalars = st.one_of(
    st.text(max_size=40), st.text(min_size=200, max_size=400), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False), st.binary(max_size=20), st.none(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def reference(encoded: bytes) -> tuple[str, str | None]:
    kv = KeyValue.FromString(encoded)
    return kv.key, any_value_text(kv.value) if kv.HasField("value") else None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), values, st.booleans()), max_size=60))
def test_bulk_decoding_matches_the_generated_classes(items):
    encoded = []
    for key, value, with_unknown_field in items:
        data = KeyValue(key=key, value=any_value(value)).SerializeToString()
        encoded.append(data + b"\x18\x05" if with_unknown_field else data)
    keys, texts = decode_key_values(encoded)
    assert list(zip(keys.to_pylist(), texts.to_pylist(), strict=True)) == [reference(e) for e in encoded]


def test_literal_values():
    encoded = [KeyValue(key=k, value=any_value(v)).SerializeToString() for k, v in [
        ("s", "text"), ("i", -3), ("f", 0.25), ("b", True), ("a", ["x", 1]), ("m", {"k": None}),
        ("bytes", b"\x01"), ("nothing", None)]]
    encoded.append(KeyValue(key="no-value").SerializeToString())
    keys, texts = decode_key_values(encoded)
    assert keys.to_pylist() == ["s", "i", "f", "b", "a", "m", "bytes", "nothing", "no-value"]
    assert texts.to_pylist() == ["text", "-3", "0.25", "true", '["x",1]', '{"k":null}', "AQ==", None, None]


@pytest.mark.parametrize(("encoded", "message"), [
    (b"\x0a\x05ab", "attribute 1: not a valid KeyValue encoding"),
    (b"\x0a\x02\xff\xfe", "attribute key is not valid UTF-8 (byte 0)"),
    (b"\x0a\x01k\x12\x04\x0a\x02\xc3\x28", "attribute value is not valid UTF-8 (byte 0)"),
])
def test_undecodable_attributes_are_errors(encoded, message):
    with pytest.raises(WireError) as caught:
        decode_key_values([KeyValue(key="fine").SerializeToString(), encoded])
    assert str(caught.value).startswith(message)
