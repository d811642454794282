"""Running `stepscope serve` in tests: in-process for status codes, as a process for crashes.

The in-process server is the real `stepscope.server.app.Server` on a free port of
127.0.0.1; the subprocess is the real `stepscope serve` command, so kill -9 and SIGTERM
act on exactly what users run.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from stepscope.config import Config
from stepscope.server.app import ServeOptions, Server
from stepscope.server.limits import ServeLimits
from stepscope.store import Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "instrumentation"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
READY = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def running_server(db: Path, *, token: str | None = None, limits: ServeLimits | None = None,
                   config: Config | None = None) -> Iterator[Server]:
    """The real server, in this process, on a free port; stopped (and drained) on exit."""
    messages: list[str] = []
    server = Server(ServeOptions(db=str(db), config=config or Config(), port=0, token=token,
                                 limits=limits or ServeLimits()), out=messages.append)
    server.messages = messages  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def post(port: int, path: str, body: bytes, content_type: str | None = PROTOBUF,
         headers: dict[str, str] | None = None, method: str = "POST",
         ) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; returns status, headers (lower-case) and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wait_for_rows(db: Path, expected: int, dataset: str = "steps", timeout: float = 10.0) -> int:
    """Poll the store (as a reader would) until it holds `expected` rows; returns the count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        store = Store(db)
        if store.exists:
            count = store.row_count(dataset)
            if count >= expected:
                return count
        time.sleep(0.05)
    return count


def make_request(trace_number: int, spans: int = 4, *, service: str = "svc",
                 workflow: str = "wf", start_ns: int = 1_767_225_600_000_000_000,
                 ) -> ExportTraceServiceRequest:
    """A small trace: a root span naming the workflow and `spans - 1` LLM child spans."""
    trace_id = trace_number.to_bytes(16, "big")
    root_id = (trace_number * 1000 + 1).to_bytes(8, "big")
    made = [Span(trace_id=trace_id, span_id=root_id, name=workflow, kind=Span.SPAN_KIND_INTERNAL,
                 start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + 5_000_000_000,
                 attributes=[_kv("gen_ai.workflow.name", workflow)])]
    for i in range(1, spans):
        made.append(Span(
            trace_id=trace_id, span_id=(trace_number * 1000 + 1 + i).to_bytes(8, "big"),
            parent_span_id=root_id, name="chat gpt-4o-mini", kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start_ns + i * 1_000_000,
            end_time_unix_nano=start_ns + i * 1_000_000 + 900_000_000,
            attributes=[_kv("gen_ai.operation.name", "chat"),
                        _kv("gen_ai.request.model", "gpt-4o-mini"),
                        _kv("gen_ai.system", "openai"),
                        _kv("gen_ai.usage.input_tokens", 100),
                        _kv("gen_ai.usage.output_tokens", 20)],
        ))
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[_kv("service.name", service)]),
        scope_spans=[ScopeSpans(spans=made)],
    )])


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class ServeProcess:
    """`stepscope serve ...` as a child process (this interpreter), on a free port."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None):
        command = [sys.executable, "-c", "from stepscope.cli import main; main()",
                   "serve", "--db", str(db),
                   "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(180) or not self.port:
            self.kill()
            raise RuntimeError("stepscope serve did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = READY.search(line)
            if match:
                self.port = int(match.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def terminate(self, timeout: float = 180) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
