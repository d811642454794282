"""OTLP/JSON files: one request per document, or JSON Lines of requests.

A file whose first line is a complete JSON value (and which has more lines) is JSON
Lines, as the Collector's file exporter writes: each line is a request of its own, and a
bad line is rejected alone. Otherwise the file is one document, parsed whole, up to
`MAX_JSON_DOCUMENT_BYTES`. Output that is JSON but not OTLP traces is named for what it
is: the SDK console exporter's span dumps, OTLP logs or metrics, or another shape.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import BinaryIO

from stepscope.ingest.units import FormatError, Unit, human_size

# One JSON document is parsed whole; above this size its Python objects alone would
# take gigabytes, so it is refused with advice to write JSON Lines or protobuf.
MAX_JSON_DOCUMENT_BYTES = 64 * 1024 * 1024


def json_units(stream: io.BufferedReader, raw: BinaryIO, source: str,
                unit_bytes: int) -> Iterator[Unit]:
    first = stream.readline(MAX_JSON_DOCUMENT_BYTES + 1)
    second = stream.readline(MAX_JSON_DOCUMENT_BYTES + 1)
    if _is_json_value(first):
        if not second.strip() and not stream.peek(1):
            # One line and nothing after it: a document, not JSON Lines.
            yield Unit("json", source, [(1, first)], consumed=raw.tell())
            return
        check_first_json_line(first)
        yield from _json_lines_units(first + second, stream, raw, source, unit_bytes)
        return
    if first.strip() and _is_json_value(second) and _looks_like_request(second):
        # A broken first line of an otherwise good JSON Lines file.
        units = _json_lines_units(first + second, stream, raw, source, unit_bytes)
        yield from units
        return
    rest = stream.read(MAX_JSON_DOCUMENT_BYTES + 1 - len(first) - len(second))
    text = first + second + rest
    if len(text) > MAX_JSON_DOCUMENT_BYTES or stream.peek(1):
        raise FormatError(
            f"one OTLP/JSON document of more than {human_size(MAX_JSON_DOCUMENT_BYTES)}; "
            "write JSON Lines (one request per line, as the Collector's file exporter does) "
            "or protobuf instead"
        )
    yield Unit("json", source, [(1, text)], consumed=raw.tell())


def _json_lines_units(start: bytes, stream: io.BufferedReader, raw: BinaryIO, source: str,
                      unit_bytes: int) -> Iterator[Unit]:
    unit = Unit("json", source, independent=True, label="line")
    pending = 0
    line_no = 0
    for line in _lines(start, stream):
        line_no += 1
        if not line.strip():
            continue
        if len(line) > MAX_JSON_DOCUMENT_BYTES:
            unit.errors.append((line_no, f"a line of more than {human_size(MAX_JSON_DOCUMENT_BYTES)}"))
        else:
            unit.records.append((line_no, line.rstrip(b"\r\n")))
        pending += len(line)
        if pending >= unit_bytes:
            unit.consumed = raw.tell()
            yield unit
            unit = Unit("json", source, independent=True, label="line")
            pending = 0
    unit.consumed = raw.tell()
    if unit.records or unit.errors:
        yield unit


def _lines(start: bytes, stream: io.BufferedReader) -> Iterator[bytes]:
    yield from io.BytesIO(start)
    while line := stream.readline(MAX_JSON_DOCUMENT_BYTES + 1):
        if len(line) > MAX_JSON_DOCUMENT_BYTES and not line.endswith(b"\n"):
            # Skip the rest of an over-long line so the next one starts cleanly.
            while (more := stream.readline(MAX_JSON_DOCUMENT_BYTES)) and not more.endswith(b"\n"):
                pass
        yield line


def _is_json_value(line: bytes) -> bool:
    if not line.strip():
        return False
    try:
        json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return True


def _looks_like_request(line: bytes) -> bool:
    doc = json.loads(line)
    return isinstance(doc, dict) and ("resourceSpans" in doc or "resource_spans" in doc)


def check_first_json_line(line: bytes) -> None:
    """The first line decides whether a JSON Lines file holds OTLP traces at all."""
    doc = json.loads(line)
    problem = json_shape_problem(doc)
    if problem:
        raise FormatError(problem if problem.startswith("not OTLP") else f"line 1: {problem}")


def json_shape_problem(doc: object) -> str | None:
    """Why a parsed JSON document is not an OTLP trace request, or None when it is one."""
    if isinstance(doc, dict):
        if "resourceSpans" in doc or "resource_spans" in doc:
            return None
        if is_console_exporter_span(doc):
            return CONSOLE_EXPORTER_REASON
        for signal in ("resourceLogs", "resourceMetrics", "resource_logs", "resource_metrics"):
            if signal in doc:
                kind = "logs" if "ogs" in signal else "metrics"
                return f"not OTLP traces: this is an OTLP {kind} request ({signal}); send traces"
        keys = ", ".join(list(doc)[:6]) or "none"
        return (f"not an OTLP trace request: expected a top-level 'resourceSpans' list, "
                f"found keys: {keys}")
    if isinstance(doc, list):
        if doc and isinstance(doc[0], dict) and is_console_exporter_span(doc[0]):
            return CONSOLE_EXPORTER_REASON
        return ("not an OTLP trace request: a JSON array; OTLP/JSON is one object with "
                "'resourceSpans' per document (or per line)")
    return f"not an OTLP trace request: a JSON {type(doc).__name__}, expected an object"


CONSOLE_EXPORTER_REASON = (
    "not OTLP: this is the OpenTelemetry SDK console exporter's output "
    "(ConsoleSpanExporter / span.to_json()), which has no stable format; export with "
    "an OTLP exporter instead (OTLPSpanExporter to a Collector or to `stepscope serve`, "
    "or the Collector's file exporter)"
)


def is_console_exporter_span(doc: dict) -> bool:
    context = doc.get("context")
    return isinstance(context, dict) and "trace_id" in context and "span_id" in context
