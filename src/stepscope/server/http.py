"""OTLP/HTTP request handling: routes, auth, limits, status codes, and the spool append.

Why the standard library's `ThreadingHTTPServer`: the server's work per request is
blocking by nature (read the body, decompress, parse, append to the spool, `fsync`,
answer), and the target load is tens of large requests per second, not thousands of
small ones, so a thread per connection is both the simplest correct model and fast
enough (see docs/benchmarks.md, "Serve"). The heavy work (decoding, normalising,
storing) happens in the spool worker, not here. An asyncio server would need a thread
pool hop for every one of those blocking steps and one more dependency.

What the server answers, following the OTLP/HTTP specification:

* 200 with an `Export*ServiceResponse` in the request's encoding; `partial_success`
  counts the spans (log records) rejected for malformed ids, with a message.
* 400 malformed body (not protobuf/JSON of the request type, corrupt gzip);
  401 missing or wrong bearer token (when a token is set); 404 unknown path;
  405 wrong method; 411 no Content-Length and not chunked; 413 body or decompressed body
  over the limit; 415 unsupported Content-Type or Content-Encoding.
* 429 (`Retry-After`) when `max_inflight` requests are already being read;
  503 (`Retry-After`) when the spool is full or the server is shutting down. OTLP
  exporters retry both after the advertised pause.

Every failure carries a `google.rpc.Status` body in the request's encoding.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from stepscope.server import payloads
from stepscope.server.limits import (
    ENCODINGS,
    BadEncoding,
    BodyTooLarge,
    CorruptBody,
    ServeLimits,
    decompress,
)
from stepscope.server.spool import KIND_LOGS, KIND_TRACES, Spool, SpoolFull

ROUTES = {"/v1/traces": KIND_TRACES, "/v1/logs": KIND_LOGS}
HEALTH_PATH = "/healthz"


class ServerState:
    """What request threads share: the spool, limits, token and counters."""

    def __init__(self, spool: Spool, limits: ServeLimits, token: str | None,
                 drain_rate: Any = None):
        self.spool = spool
        self.limits = limits
        self.token = token
        self.inflight = threading.BoundedSemaphore(limits.max_inflight)
        self.closing = threading.Event()
        self.drain_rate = drain_rate or (lambda: 0.0)  # bytes/s the worker stores
        self.wake_worker: Any = lambda: None
        self._counter_lock = threading.Lock()
        self.responses: dict[int, int] = {}
        self.spans_accepted = 0
        self.spans_rejected = 0
        self.log_records_accepted = 0

    def count(self, status: int, accepted: int = 0, rejected: int = 0, kind: int = 0) -> None:
        with self._counter_lock:
            self.responses[status] = self.responses.get(status, 0) + 1
            if kind == KIND_TRACES:
                self.spans_accepted += accepted
                self.spans_rejected += rejected
            elif kind == KIND_LOGS:
                self.log_records_accepted += accepted

    def retry_after(self) -> int:
        """Seconds until the spool has room again, by the worker's recent drain rate.

        Aimed at 10% below the limit rather than empty: senders should come back while
        the worker still has a backlog to chew on, so it never idles between waves.
        """
        limits = self.limits
        rate = self.drain_rate()
        excess = max(self.spool.pending_bytes - limits.max_spool_bytes * 9 // 10, 0)
        seconds = math.ceil(excess / rate) if rate > 0 else limits.retry_after_min_s
        return max(limits.retry_after_min_s, min(limits.retry_after_max_s, seconds))


class OTLPServer(ThreadingHTTPServer):
    """A thread per connection, a ceiling on connections, and a way to close them all."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: ServerState,
                 family: socket.AddressFamily = socket.AF_INET):
        self.address_family = family
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, OTLPHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            too_many = len(self._connections) >= self.state.limits.max_connections
            if not too_many:
                self._connections.add(request)
        if too_many:
            _refuse(request, self.state.retry_after())
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_idle_connections(self) -> None:
        """Stop reading from every client: idle keep-alive threads end, answers still go out."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)


def _refuse(connection: socket.socket, retry_after: int) -> None:
    body = payloads.status_body(503, "too many open connections", payloads.PROTOBUF)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/x-protobuf\r\n"
        f"Retry-After: {retry_after}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        connection.sendall(head.encode() + body)


class OTLPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stepscope"
    sys_version = ""
    server: OTLPServer

    def setup(self) -> None:
        self.timeout = self.server.state.limits.socket_timeout_s
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet per request: the server reports totals instead of one line per batch."""

    def log_error(self, format: str, *args: Any) -> None:
        print(f"stepscope serve: {self.address_string()}: {format % args}",
              file=sys.stderr, flush=True)

    # -- routing ------------------------------------------------------------------------

    def do_POST(self) -> None:
        kind = self._route("POST")
        if kind is None:
            return
        state = self.server.state
        media = payloads.media_type(self.headers.get("Content-Type"))
        self._media = media or payloads.PROTOBUF
        if media is None:
            return self._fail(415, "Content-Type must be application/x-protobuf or "
                                   f"application/json, not {self.headers.get('Content-Type')!r}")
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ENCODINGS:
            return self._fail(415, f"Content-Encoding {encoding!r} is not supported "
                                   f"(use one of: {', '.join(ENCODINGS)})")
        if state.closing.is_set():
            return self._fail(503, "server is shutting down", retry_after=True)
        length = self._content_length()
        if length is False:
            return None
        if state.spool.pending_bytes >= state.limits.max_spool_bytes:
            state.wake_worker()
            return self._fail(503, "server is storing a backlog; retry later", retry_after=True)
        if not state.inflight.acquire(timeout=state.limits.inflight_wait_s):
            return self._fail(429, "too many concurrent requests; retry later", retry_after=True)
        try:
            self._receive(kind, media, encoding, length)
        finally:
            state.inflight.release()

    def do_GET(self) -> None:
        if urlsplit(self.path).path == HEALTH_PATH:
            return self._send(200, b'{"status":"ok"}', "application/json")
        self._route("GET")
        return None

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> int | None:
        """The signal kind for POST to a known path; otherwise answer 401/404/405."""
        self._media = payloads.media_type(self.headers.get("Content-Type")) or payloads.PROTOBUF
        if not self._authorised():
            self._fail(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                       extra={"WWW-Authenticate": 'Bearer realm="stepscope"'})
            return None
        path = urlsplit(self.path).path
        kind = ROUTES.get(path)
        if kind is None:
            self._fail(404, f"no such endpoint {path!r}; OTLP/HTTP endpoints are "
                            f"{', '.join(ROUTES)}")
            return None
        if method != "POST":
            self._fail(405, f"{path} accepts POST only", extra={"Allow": "POST"})
            return None
        return kind

    def _authorised(self) -> bool:
        token = self.server.state.token
        if not token:
            return True
        scheme, _, credential = (self.headers.get("Authorization") or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), token.encode())

    # -- the body -----------------------------------------------------------------------

    def _content_length(self) -> int | bool | None:
        """Declared body length; None for chunked; False when an error was answered."""
        limit = self.server.state.limits.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return None
        declared = self.headers.get("Content-Length")
        if declared is None:
            self._fail(411, "Content-Length is required (or Transfer-Encoding: chunked)")
            return False
        try:
            length = int(declared)
            if length < 0:
                raise ValueError
        except ValueError:
            self._fail(400, f"Content-Length {declared!r} is not a byte count")
            return False
        if length > limit:
            self._fail(413, f"body of {length} bytes is over the {limit}-byte limit")
            return False
        return length

    def _receive(self, kind: int, media: str, encoding: str, length: int | None) -> None:
        state = self.server.state
        limits = state.limits
        try:
            body = self._read_chunked(limits.max_body_bytes) if length is None \
                else self._read_exactly(length)
        except BodyTooLarge as exc:
            return self._fail(413, str(exc))
        except (OSError, ValueError) as exc:
            self.close_connection = True
            self.log_error("reading the request body failed: %s", exc)
            return None
        try:
            data = decompress(body, encoding, limits.max_decompressed_bytes)
            del body
            accept = payloads.accept_traces if kind == KIND_TRACES else payloads.accept_logs
            accepted = accept(data, media)
        except BodyTooLarge as exc:
            return self._fail(413, str(exc), drained=True)
        except BadEncoding as exc:
            return self._fail(415, str(exc), drained=True)
        except (CorruptBody, payloads.MalformedBody) as exc:
            return self._fail(400, str(exc), drained=True)
        if accepted.accepted:
            try:
                state.spool.append(kind, accepted.payload)
            except SpoolFull:
                state.wake_worker()
                return self._fail(503, "server is storing a backlog; retry later",
                                  retry_after=True, drained=True)
            except OSError as exc:
                self.log_error("writing the spool failed: %s", exc)
                return self._fail(503, f"cannot write the spool: {exc.strerror}",
                                  retry_after=True, drained=True)
        respond = payloads.trace_response if kind == KIND_TRACES else payloads.logs_response
        state.count(200, accepted.accepted, accepted.rejected, kind)
        return self._send(200, respond(accepted, media), media)

    def _read_exactly(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise ValueError(f"client sent {len(data)} of {length} body bytes")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        """Decode `Transfer-Encoding: chunked` (OkHttp-based exporters send gzip this way)."""
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ValueError("malformed chunk size line")
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers, ignored
                return bytes(out)
            if len(out) + size > limit:
                self.close_connection = True
                raise BodyTooLarge(f"chunked body is over the {limit}-byte limit")
            out += self._read_exactly(size)
            self.rfile.readline(8)

    # -- answers ------------------------------------------------------------------------

    def _fail(self, status: int, message: str, *, retry_after: bool = False,
              extra: dict[str, str] | None = None, drained: bool = False) -> None:
        """Answer with a google.rpc.Status; close the connection if the body is unread."""
        headers = dict(extra or {})
        if retry_after:
            headers["Retry-After"] = str(self.server.state.retry_after())
        if not drained and self.command == "POST":
            # The unread body would be taken for the next request on this connection.
            self.close_connection = True
            headers["Connection"] = "close"
        self.server.state.count(status)
        media = getattr(self, "_media", payloads.PROTOBUF)
        self._send(status, payloads.status_body(status, message, media), media, headers)

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
