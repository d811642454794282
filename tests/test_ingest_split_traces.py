"""A trace whose spans arrive in different files or batches still ends with one root."""

from __future__ import annotations

from ingest_support import ingest, rows, write_files
from otlp_builders import agent_trace, hex_span, hex_trace, request, to_json_lines, to_protobuf

from stepscope.store import Store

TRACE = hex_trace(7)


def trace_rows(store: Store) -> list[tuple]:
    return rows(store, "span_id, parent_span_id, is_root, workflow", f"trace_id = '{TRACE}'")


def test_root_arriving_last_in_another_file_makes_one_root(tmp_path):
    root, llm, tool = agent_trace(7, workflow="refund_desk")
    children, root_file = write_files(tmp_path, {"1-children.pb": to_protobuf(request([llm, tool])),
                                                 "2-root.pb": to_protobuf(request([root]))})
    store = Store.open(tmp_path / "db", create=True)
    ingest(store, children)
    assert trace_rows(store) == [
        (hex_span(72), hex_span(71), False, None),
        (hex_span(73), hex_span(71), False, None),
    ]
    ingest(store, root_file)
    assert trace_rows(store) == [
        (hex_span(71), None, True, "refund_desk"),
        (hex_span(72), hex_span(71), False, None),
        (hex_span(73), hex_span(71), False, None),
    ]


def test_spans_of_one_trace_in_several_batches_of_one_file(tmp_path):
    root, llm, tool = agent_trace(7, workflow="refund_desk")
    (path,) = write_files(tmp_path, {"batches.jsonl": to_json_lines(
        [request([tool]), request([llm]), request([root])])})
    store = Store.open(tmp_path / "db", create=True)
    report = ingest(store, path)
    assert (report.spans_stored, report.rejected) == (3, [])
    assert rows(store, "span_id, is_root, source_batch", f"trace_id = '{TRACE}'") == [
        (hex_span(71), True, 3), (hex_span(72), False, 2), (hex_span(73), False, 1)]


def test_root_repeated_in_a_later_file_stays_one_root(tmp_path):
    spans = agent_trace(7, workflow="refund_desk")
    first, again = write_files(tmp_path, {"a.pb": to_protobuf(request(spans)),
                                          "b.pb": to_protobuf(request(spans[:1]))})
    store = Store.open(tmp_path / "db", create=True)
    ingest(store, first, again)
    assert rows(store, "span_id, is_root", f"trace_id = '{TRACE}'") == [
        (hex_span(71), True), (hex_span(72), False), (hex_span(73), False)]
