"""Backpressure: a bounded spool and bounded concurrency, answered with 503/429 + Retry-After.

The store is made slow the realistic way: another writer holds its write lock, so the
worker cannot publish and the spool fills up.
"""

from __future__ import annotations

import socket
import threading
import time

from google.rpc.status_pb2 import Status
from serve_harness import make_request, post, running_server, wait_for_rows

from stepscope.server.limits import ServeLimits
from stepscope.server.spool import HEADER
from stepscope.store import Store


def _spool_bytes(server) -> int:
    return sum(p.stat().st_size for p in server.spool.dir.glob("wal-*.log"))


def test_full_spool_is_503_with_retry_after_and_nothing_is_lost(tmp_path):
    db = tmp_path / "db"
    requests = [make_request(n, spans=8).SerializeToString() for n in range(1, 41)]
    limit = 4 * (len(requests[0]) + HEADER.size)
    with running_server(db, limits=ServeLimits(max_spool_bytes=limit)) as server:
        store = Store(db)
        accepted: list[int] = []
        with store.write_lock():
            statuses = []
            for number, body in enumerate(requests, start=1):
                status, headers, answer = post(server.port, "/v1/traces", body)
                statuses.append(status)
                if status == 200:
                    accepted.append(number)
                else:
                    assert status == 503
                    assert 1 <= int(headers["retry-after"]) <= 30
                    assert "retry later" in Status.FromString(answer).message
                # Memory and disk stay bounded: never more than the limit plus one request.
                assert server.spool.pending_bytes <= limit + len(body) + HEADER.size
                assert _spool_bytes(server) <= limit + len(body) + HEADER.size
            assert statuses.count(200) == 4
        # The lock is released: the backlog is stored and the server accepts again.
        assert wait_for_rows(db, 4 * 8) == 4 * 8
        deadline = time.monotonic() + 10
        while post(server.port, "/v1/traces", requests[-1])[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert wait_for_rows(db, 5 * 8) == 5 * 8


def test_too_many_concurrent_requests_is_429(tmp_path):
    limits = ServeLimits(max_inflight=1, inflight_wait_s=0.2)
    with running_server(tmp_path / "db", limits=limits) as server:
        body = make_request(1).SerializeToString()
        slow = socket.create_connection(("127.0.0.1", server.port))
        try:
            # A client that sends its headers and only half its body holds the one slot.
            slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Type: application/x-protobuf\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            time.sleep(0.3)
            status, headers, answer = post(server.port, "/v1/traces", body)
            assert status == 429
            assert int(headers["retry-after"]) >= 1
            assert "too many concurrent requests" in Status.FromString(answer).message
            slow.sendall(body[10:])
            assert slow.recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            slow.close()
        assert post(server.port, "/v1/traces", make_request(2).SerializeToString())[0] == 200
        assert wait_for_rows(tmp_path / "db", 8) == 8


def test_the_sdk_exporter_retries_after_503_until_stored(tmp_path):
    """The official OTLP/HTTP exporter honours Retry-After and gets its batch in."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    db = tmp_path / "db"
    filler = make_request(1, spans=8).SerializeToString()
    with running_server(db, limits=ServeLimits(max_spool_bytes=len(filler))) as server:
        captured = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(captured))
        with provider.get_tracer("test").start_as_current_span("retried-root"):
            pass
        spans = captured.get_finished_spans()
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.port}/v1/traces",
                                    timeout=30)
        result: list[SpanExportResult] = []
        lock = Store(db).write_lock()
        lock.__enter__()
        try:
            assert post(server.port, "/v1/traces", filler)[0] == 200   # the spool is now full
            sender = threading.Thread(target=lambda: result.append(exporter.export(spans)))
            sender.start()
            time.sleep(2.5)          # the exporter meets 503s meanwhile
            assert not result
            assert server.state.responses.get(503, 0) >= 1
        finally:
            lock.__exit__(None, None, None)
        sender.join(30)
        assert result == [SpanExportResult.SUCCESS]
        assert wait_for_rows(db, 9) == 9
        connection = Store(db).connect()
        assert connection.execute("SELECT count(*) FROM steps WHERE name = 'retried-root'"
                                  ).fetchone()[0] == 1
        connection.close()
        exporter.shutdown()
