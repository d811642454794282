"""The raw spans table: what decoding produces and normalisation consumes.

Decoding (protobuf or OTLP/JSON) does the minimum per span in Python — ids to hex,
attributes flattened to parallel key/value lists — and everything else (convention
precedence, step kinds, tokens, redaction) happens column-wise in DuckDB on this table.
Attribute values are text: arrays and key-value lists as JSON, bytes as base64, numbers
in their shortest exact decimal form, booleans as `true`/`false`.
"""

from __future__ import annotations

import pyarrow as pa

_STR_LIST = pa.list_(pa.string())

RAW_SPAN_SCHEMA = pa.schema([
    pa.field("trace_id", pa.string()),            # 32 lower-case hex
    pa.field("span_id", pa.string()),             # 16 lower-case hex
    pa.field("parent_span_id", pa.string()),      # null when empty
    pa.field("start_time_ns", pa.int64()),
    pa.field("end_time_ns", pa.int64()),
    pa.field("name", pa.string()),
    pa.field("span_kind", pa.int32()),            # OTLP SpanKind number
    pa.field("status_code", pa.int32()),          # 0 unset, 1 ok, 2 error
    pa.field("status_message", pa.string()),
    pa.field("attr_keys", _STR_LIST),             # span attributes, parallel lists
    pa.field("attr_values", _STR_LIST),
    pa.field("resource_keys", _STR_LIST),         # resource attributes, parallel lists
    pa.field("resource_values", _STR_LIST),
    pa.field("scope_name", pa.string()),
    pa.field("scope_version", pa.string()),
    pa.field("event_names", _STR_LIST),           # names of the span's events, in order
    pa.field("exception_type", pa.string()),      # from the first `exception` event
    pa.field("exception_message", pa.string()),
    pa.field("first_token_ns", pa.int64()),       # time of a first-token event, when present
    pa.field("event_attr_keys", _STR_LIST),       # attributes of content events (gen_ai.*
    pa.field("event_attr_values", _STR_LIST),     # message/choice events), prefixed by event name
    pa.field("source_file", pa.string()),
    pa.field("source_batch", pa.int32()),
])
