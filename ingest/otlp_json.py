"""OTLP/JSON request documents into the raw span columns.

Follows the OTLP/JSON rules of the specification — hex ids in any case, 64-bit integers
as decimal strings (or numbers), integer enums, lowerCamelCase keys — and also accepts
what generic protobuf-JSON writers produce: base64 ids, enum names such as
`SPAN_KIND_CLIENT` or `STATUS_CODE_ERROR`, and snake_case keys. Values become text
exactly as the protobuf path makes them (`wire.text_of_native`), so both encodings of
the same spans give identical rows. Every problem names its place in the document.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stepscope.ingest.json_documents import json_shape_problem
from stepscope.ingest.units import OtlpError
from stepscope.ingest.wire import json_float, text_of_native

if TYPE_CHECKING:
    from stepscope.ingest.otlp_decode import RawColumns

TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
_SPAN_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
               "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def parse_json(payload: bytes, one_line: bool = False) -> Any:
    """One OTLP/JSON document; OtlpError says where the text is broken.

    With `one_line` (a JSON Lines record) positions are given as columns only.
    """
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OtlpError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            first = json.JSONDecoder().raw_decode(text.lstrip())[0]
            problem = json_shape_problem(first)
            if problem and problem.startswith("not OTLP"):
                raise OtlpError(problem) from None
            raise OtlpError(
                f"several JSON values in one document (the second at line {exc.lineno}); "
                "OTLP/JSON is one request per document, or one per line (JSON Lines)"
            ) from None
        where = f"column {exc.colno}" if one_line else f"line {exc.lineno} column {exc.colno}"
        raise OtlpError(f"invalid JSON at {where}: {exc.msg}") from None


def add_request(columns: RawColumns, doc: Any, batch: int) -> None:
    """Append the spans of one OTLP/JSON request document to the columns."""
    problem = json_shape_problem(doc)
    if problem:
        raise OtlpError(problem)
    resource_spans = _get(doc, "resourceSpans", "resource_spans")
    for i, rs in enumerate(_list(resource_spans, "resourceSpans")):
        where = f"resourceSpans[{i}]"
        rs = _dict(rs, where)
        resource = _dict(rs.get("resource") or {}, f"{where}.resource")
        resource_keys, resource_values = _json_attributes(
            resource.get("attributes"), f"{where}.resource.attributes")
        scope_spans = _get(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for j, ss in enumerate(_list(scope_spans, f"{where}.scopeSpans")):
            swhere = f"{where}.scopeSpans[{j}]"
            ss = _dict(ss, swhere)
            scope = _dict(_get(ss, "scope", "instrumentationLibrary") or {}, f"{swhere}.scope")
            group = len(columns.groups)
            columns.groups.append((resource_keys, resource_values,
                                _str(scope.get("name"), f"{swhere}.scope.name") or None,
                                _str(scope.get("version"), f"{swhere}.scope.version") or None))
            first = len(columns.trace_ids)
            for k, span in enumerate(_list(ss.get("spans"), f"{swhere}.spans")):
                _add_span(columns, _dict(span, f"{swhere}.spans[{k}]"), f"{swhere}.spans[{k}]")
            count = len(columns.trace_ids) - first
            columns.group_of_span.append((group, count))
            columns.batches.append((batch, count))

def _add_span(columns: RawColumns, span: dict, where: str) -> None:
    name = _str(span.get("name"), f"{where}.name")
    columns.trace_ids.append(_json_id(_get(span, "traceId", "trace_id"), TRACE_ID_BYTES,
                                   f"{where}.traceId", name))
    columns.span_ids.append(_json_id(_get(span, "spanId", "span_id"), SPAN_ID_BYTES,
                                  f"{where}.spanId", name))
    parent = _get(span, "parentSpanId", "parent_span_id")
    columns.parent_ids.append(
        _json_id(parent, SPAN_ID_BYTES, f"{where}.parentSpanId", name) if parent else b""
    )
    columns.names.append(name)
    columns.kinds.append(_enum(span.get("kind"), _SPAN_KINDS, f"{where}.kind"))
    columns.starts.append(_int(_get(span, "startTimeUnixNano", "start_time_unix_nano"),
                            f"{where}.startTimeUnixNano"))
    columns.ends.append(_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"),
                          f"{where}.endTimeUnixNano"))
    status = _dict(span.get("status") or {}, f"{where}.status")
    columns.status_codes.append(_enum(status.get("code"), _STATUS_CODES, f"{where}.status.code"))
    columns.status_messages.append(_str(status.get("message"), f"{where}.status.message") or None)
    keys, values = _json_attributes(span.get("attributes"), f"{where}.attributes")
    columns.attr_keys.extend(keys)
    columns.attr_values.extend(values)
    columns.attr_offsets.append(len(columns.attr_keys))
    events = span.get("events")
    if events:
        columns.add_events(len(columns.trace_ids) - 1, _json_events(events, f"{where}.events"))


def _get(d: dict, *names: str) -> Any:
    for name in names:
        value = d.get(name)
        if value is not None:
            return value
    return None


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{where}: expected a list, got {_kind(value)}")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpError(f"{where}: expected a string, got {_kind(value)}")
    return value


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise OtlpError(f"{where}: expected an integer (a number or a decimal string), got {_kind(value)}")


def _enum(value: Any, names: dict[str, int], where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value in names:
        return names[value]
    return _int(value, where)


def _json_id(value: Any, size: int, where: str, name: str) -> bytes:
    """An id as hex (OTLP/JSON, any case) or base64 (generic protobuf JSON)."""
    if not isinstance(value, str):
        raise OtlpError(f"{where} (span {name!r}): expected a hex string, got {_kind(value)}")
    if len(value) == 2 * size:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(value, validate=True) if value else b""
    except binascii.Error:
        decoded = None
    if decoded is not None and len(decoded) == size and len(value) == 4 * ((size + 2) // 3):
        return decoded
    raise OtlpError(
        f"{where} (span {name!r}): {value!r} is not a {size}-byte id "
        f"({2 * size} hex characters, or base64)"
    )


def _json_attributes(items: Any, where: str) -> tuple[list[str], list[str | None]]:
    keys: list[str] = []
    values: list[str | None] = []
    for i, item in enumerate(_list(items, where)):
        if not isinstance(item, dict) or not isinstance(item.get("key", ""), str):
            raise OtlpError(f"{where}[{i}]: expected an object with 'key' and 'value'")
        keys.append(item.get("key", ""))
        values.append(_json_value_text(item.get("value"), f"{where}[{i}].value"))
    return keys, values


_VALUE_KINDS = {
    "stringValue": "string_value", "string_value": "string_value",
    "boolValue": "bool_value", "bool_value": "bool_value",
    "intValue": "int_value", "int_value": "int_value",
    "doubleValue": "double_value", "double_value": "double_value",
    "arrayValue": "array_value", "array_value": "array_value",
    "kvlistValue": "kvlist_value", "kvlist_value": "kvlist_value",
    "bytesValue": "bytes_value", "bytes_value": "bytes_value",
}


def _json_value_text(value: Any, where: str) -> str | None:
    kind, native = _json_native(value, where)
    return text_of_native(kind, native) if kind else None


def _json_native(value: Any, where: str) -> tuple[str | None, Any]:
    """(AnyValue field name, Python value) of an OTLP/JSON AnyValue object."""
    if value is None:
        return None, None
    value = _dict(value, where)
    if not value:
        return None, None
    (key, raw), *rest = value.items()
    kind = _VALUE_KINDS.get(key)
    if kind is None or rest:
        raise OtlpError(f"{where}: expected one of stringValue, intValue, doubleValue, "
                        f"boolValue, arrayValue, kvlistValue, bytesValue; got {', '.join(value)}")
    if kind == "string_value":
        return kind, _str(raw, where)
    if kind == "bool_value":
        if not isinstance(raw, bool):
            raise OtlpError(f"{where}: expected true or false, got {_kind(raw)}")
        return kind, raw
    if kind == "int_value":
        return kind, _int(raw, where)
    if kind == "double_value":
        try:
            return kind, float(raw)
        except (TypeError, ValueError):
            raise OtlpError(f"{where}: expected a number, got {_kind(raw)}") from None
    if kind == "bytes_value":
        try:
            data = base64.b64decode(_str(raw, where).replace("-", "+").replace("_", "/") + "==")
        except binascii.Error:
            raise OtlpError(f"{where}: bytesValue is not base64") from None
        return kind, base64.b64encode(data).decode("ascii")
    inner = _dict(raw, where).get("values") or []
    if kind == "array_value":
        return kind, [_plain(_json_native(v, f"{where}.values[{i}]"))
                      for i, v in enumerate(_list(inner, where))]
    out = {}
    for i, kv in enumerate(_list(inner, where)):
        kv = _dict(kv, f"{where}.values[{i}]")
        out[_str(kv.get("key"), f"{where}.values[{i}].key")] = _plain(
            _json_native(kv.get("value"), f"{where}.values[{i}].value"))
    return kind, out


def _plain(kind_native: tuple[str | None, Any]) -> Any:
    kind, native = kind_native
    return json_float(native) if kind == "double_value" else native


def _json_events(events: Any, where: str) -> Iterable[tuple[str, int, list[tuple[str, str | None]]]]:
    for i, event in enumerate(_list(events, where)):
        ewhere = f"{where}[{i}]"
        event = _dict(event, ewhere)
        keys, values = _json_attributes(event.get("attributes"), f"{ewhere}.attributes")
        yield (_str(event.get("name"), f"{ewhere}.name"),
               _int(_get(event, "timeUnixNano", "time_unix_nano"), f"{ewhere}.timeUnixNano"),
               list(zip(keys, values, strict=True)))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "an object"
