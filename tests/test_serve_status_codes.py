"""`stepscope serve` answers every case as the OTLP/HTTP specification says."""

from __future__ import annotations

import json

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from serve_harness import JSON, PROTOBUF, fixture, make_request, post, running_server, wait_for_rows

from stepscope.server.limits import ServeLimits


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path / "db") as running:
        yield running


def test_protobuf_request_is_answered_200_with_an_empty_response(server, tmp_path):
    status, headers, body = post(server.port, "/v1/traces", fixture("openai-v2.traces.pb"))
    assert status == 200
    assert headers["content-type"] == PROTOBUF
    response = ExportTraceServiceResponse.FromString(body)
    assert not response.HasField("partial_success")
    assert wait_for_rows(tmp_path / "db", 10) == 10


def test_json_request_is_answered_in_json(server, tmp_path):
    status, headers, body = post(server.port, "/v1/traces", fixture("traceloop.traces.json"), JSON)
    assert status == 200
    assert headers["content-type"] == JSON
    assert json.loads(body) == {}
    assert wait_for_rows(tmp_path / "db", 10) == 10


def test_empty_request_is_a_success(server):
    status, _, body = post(server.port, "/v1/traces", b"")
    assert status == 200
    assert body == b""


def test_spans_with_invalid_ids_are_rejected_and_counted(server, tmp_path):
    request = make_request(1, spans=5)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].span_id = b"\x01\x02\x03"          # too short
    spans[2].trace_id = bytes(16)               # all zero
    status, _, body = post(server.port, "/v1/traces", request.SerializeToString())
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert partial.rejected_spans == 2
    assert "span id is not 8 bytes" in partial.error_message
    assert "trace id is not 16 bytes" in partial.error_message
    assert wait_for_rows(tmp_path / "db", 3) == 3


def test_partial_success_in_json(server):
    document = json.loads(fixture("openai-v2.traces.json"))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "not-hex"
    status, headers, body = post(server.port, "/v1/traces", json.dumps(document).encode(), JSON)
    assert (status, headers["content-type"]) == (200, JSON)
    answer = json.loads(body)
    assert answer["partialSuccess"]["rejectedSpans"] == "1"
    assert answer["partialSuccess"]["errorMessage"].startswith("rejected 1 span: trace id")


def test_malformed_protobuf_is_400_with_a_status_body(server):
    status, headers, body = post(server.port, "/v1/traces", b"\x0a\xff\xff\xff\x0f garbage")
    assert status == 400
    assert headers["content-type"] == PROTOBUF
    rpc = Status.FromString(body)
    assert rpc.code == 3
    assert "not a protobuf ExportTraceServiceRequest" in rpc.message


def test_malformed_json_is_400_with_a_json_status(server):
    status, headers, body = post(server.port, "/v1/traces", b'{"resourceSpans": 5}', JSON)
    assert status == 400
    assert headers["content-type"] == JSON
    assert json.loads(body)["message"] == (
        "body is not an OTLP/JSON ExportTraceServiceRequest: 'resourceSpans' must be a JSON array")


def test_wrong_content_type_is_415(server):
    status, _, body = post(server.port, "/v1/traces", b"hello", "text/plain")
    assert status == 415
    assert "Content-Type must be application/x-protobuf or application/json" in \
        Status.FromString(body).message


def test_unknown_content_encoding_is_415(server):
    status, _, body = post(server.port, "/v1/traces", b"x", headers={"Content-Encoding": "br"})
    assert status == 415
    assert "Content-Encoding 'br' is not supported" in Status.FromString(body).message


def test_unknown_path_is_404_and_wrong_method_405(server):
    status, _, body = post(server.port, "/v1/metrics", b"")
    assert status == 404
    assert "/v1/traces" in Status.FromString(body).message
    status, headers, _ = post(server.port, "/v1/traces", b"", method="GET")
    assert status == 405
    assert headers["allow"] == "POST"
    status, _, _ = post(server.port, "/v1/logs", b"", method="PUT")
    assert status == 405


def test_logs_endpoint_answers_with_a_logs_response(server, tmp_path):
    status, _, body = post(server.port, "/v1/logs", fixture("openai-v2.logs.pb"))
    assert status == 200
    assert not ExportLogsServiceResponse.FromString(body).HasField("partial_success")
    assert wait_for_rows(tmp_path / "db", 13, dataset="content_events") == 13


def test_body_over_the_size_limit_is_413(tmp_path):
    limits = ServeLimits(max_body_bytes=2048)
    with running_server(tmp_path / "db", limits=limits) as server:
        status, headers, body = post(server.port, "/v1/traces", fixture("openai-v2.traces.pb"))
        assert status == 413
        assert headers["connection"] == "close"
        assert "over the 2048-byte limit" in Status.FromString(body).message
        # Under the limit on the same server: accepted.
        small = make_request(7, spans=2).SerializeToString()
        assert post(server.port, "/v1/traces", small)[0] == 200


def test_missing_content_length_is_411(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-protobuf\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 411 ")


def test_chunked_body_is_accepted(server, tmp_path):
    import http.client

    payload = fixture("openinference.traces.pb")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/v1/traces")
    connection.putheader("Content-Type", PROTOBUF)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for start in range(0, len(payload), 1000):
        piece = payload[start:start + 1000]
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 200
    response.read()
    connection.close()
    assert wait_for_rows(tmp_path / "db", 10) == 10


def test_keep_alive_connection_serves_many_requests(server, tmp_path):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for number in range(1, 6):
        connection.request("POST", "/v1/traces", body=make_request(number).SerializeToString(),
                           headers={"Content-Type": PROTOBUF})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()
    assert wait_for_rows(tmp_path / "db", 20) == 20
