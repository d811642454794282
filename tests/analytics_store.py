"""Small stores with hand-chosen spans, for analytics tests worked out by hand.

Spans are real OTLP protobuf (tests/otlp_builders.py) with the attributes instrumentations
send (OpenTelemetry GenAI keys), written to a file and loaded with
`stepscope.ingest.pipeline.ingest_paths`, the path production data takes. Trace and
span names stay readable in tests (`"t1"`, `"llm-a"`) and are hashed into OTLP ids.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from otlp_builders import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    STATUS_UNSET,
    request_of,
    resource_spans,
    span,
    to_protobuf,
)

from stepscope.config import Config
from stepscope.ingest.pipeline import ingest_paths
from stepscope.store import Store

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # a Tuesday of ISO week 2026-W47
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_files = itertools.count()


@dataclass(frozen=True)
class Spec:
    """One span and the resource (service, version, environment) that sent it."""

    span: Any
    resource: tuple[tuple[str, str], ...]


def tid(name: str) -> str:
    """The hex trace id of trace `name`, as the store holds it."""
    return _trace_bytes(name).hex()


def _trace_bytes(name: str) -> bytes:
    return hashlib.md5(f"trace:{name}".encode()).digest()


def _span_bytes(trace: str, name: str) -> bytes:
    return hashlib.md5(f"span:{trace}:{name}".encode()).digest()[:8]


def ns(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1) * 1_000


def _resource(version: str, service: str, environment: str) -> tuple[tuple[str, str], ...]:
    return (("service.name", service), ("service.version", version),
            ("deployment.environment.name", environment))


def root(trace: str, workflow: str, outcome: str | None = "completed", *,
         start: datetime = T0, duration_ms: float = 10_000, tenant: str | None = None,
         user: str | None = None, session: str | None = None, version: str = "1.0.0",
         service: str = "support-agent", environment: str = "production",
         error: bool = False, name: str = "root") -> Spec:
    """The run: its workflow, outcome (`task.outcome`), tenant, user and session."""
    attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent",
                                  "gen_ai.agent.name": workflow}
    for key, value in (("task.outcome", outcome), ("tenant.id", tenant), ("user.id", user),
                       ("gen_ai.conversation.id", session)):
        if value is not None:
            attributes[key] = value
    return Spec(span(f"invoke_agent {workflow}", trace=_trace_bytes(trace),
                     span=_span_bytes(trace, name), kind=SPAN_KIND_SERVER, start_ns=ns(start),
                     duration_ms=duration_ms, attributes=attributes,
                     status=STATUS_ERROR if error else STATUS_UNSET),
                _resource(version, service, environment))


def llm(trace: str, name: str, model: str | None = "gpt-4o", *, provider: str | None = "openai",
        input_tokens: int | None = 1000, output_tokens: int | None = 100,
        cached_input_tokens: int | None = None, cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None, response_model: str | None = None,
        start: datetime = T0, duration_ms: float = 1000, error: str | None = None,
        ttft_s: float | None = None, reported_cost_usd: float | None = None,
        operation: str = "chat", version: str = "1.0.0", service: str = "support-agent",
        environment: str = "production", parent: str = "root") -> Spec:
    """A model call (chat by default; `operation="embeddings"` for an embedding)."""
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
    for key, value in (
        ("gen_ai.provider.name", provider), ("gen_ai.request.model", model),
        ("gen_ai.response.model", response_model),
        ("gen_ai.usage.input_tokens", input_tokens),
        ("gen_ai.usage.output_tokens", output_tokens),
        ("gen_ai.usage.cache_read.input_tokens", cached_input_tokens),
        ("gen_ai.usage.cache_creation.input_tokens", cache_write_tokens),
        ("gen_ai.usage.reasoning.output_tokens", reasoning_tokens),
        ("gen_ai.response.time_to_first_chunk", ttft_s),
        ("gen_ai.usage.cost", reported_cost_usd),
        ("error.type", error),
    ):
        if value is not None:
            attributes[key] = value
    return Spec(span(f"{operation} {model}", trace=_trace_bytes(trace),
                     span=_span_bytes(trace, name), parent=_span_bytes(trace, parent),
                     kind=SPAN_KIND_CLIENT, start_ns=ns(start) + 1_000_000,
                     duration_ms=duration_ms, attributes=attributes,
                     status=STATUS_ERROR if error else STATUS_UNSET,
                     status_message=error or ""),
                _resource(version, service, environment))


def tool(trace: str, name: str, tool_name: str = "lookup_order", *, error: str | None = None,
         message: str | None = None, start: datetime = T0, duration_ms: float = 200,
         version: str = "1.0.0", service: str = "support-agent",
         environment: str = "production") -> Spec:
    attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool",
                                  "gen_ai.tool.name": tool_name}
    if error:
        attributes["error.type"] = error
    return Spec(span(f"execute_tool {tool_name}", trace=_trace_bytes(trace),
                     span=_span_bytes(trace, name), parent=_span_bytes(trace, "root"),
                     start_ns=ns(start) + 2_000_000, duration_ms=duration_ms,
                     attributes=attributes, status=STATUS_ERROR if error else STATUS_UNSET,
                     status_message=(message or error or "") if error else ""),
                _resource(version, service, environment))


def write_request(directory: Path, specs: list[Spec]) -> Path:
    """One OTLP/protobuf export request holding the spans, grouped by resource."""
    groups: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for spec in specs:
        groups.setdefault(spec.resource, []).append(spec.span)
    req = request_of(*(resource_spans(spans, dict(resource)) for resource, spans in groups.items()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"export-{next(_files):04d}.pb"
    path.write_bytes(to_protobuf(req))
    return path


def add(store: Store, specs: list[Spec], config: Config | None = None) -> None:
    """Ingest more spans into `store` (one file, one batch)."""
    path = write_request(store.path.parent / f"{store.path.name}-otlp", specs)
    report = ingest_paths(store, [path], config or Config(), workers=1)
    assert not report.rejected, report.rejected


def make_store(path: Path | str, specs: list[Spec], config: Config | None = None) -> Store:
    store = Store.open(Path(path), create=True)
    if specs:
        add(store, specs, config)
    return store
