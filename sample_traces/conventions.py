"""How each team's instrumentation spells a step: span names, kinds and attribute keys.

Four conventions, as their semantic-convention packages and instrumentations define them:

- `otel_genai`: OpenTelemetry GenAI semantic conventions, current keys
  (`gen_ai.provider.name`, `gen_ai.usage.cache_read.input_tokens`, JSON message attributes).
- `otel_genai_legacy`: the older GenAI keys (`gen_ai.system`, `gen_ai.usage.prompt_tokens` /
  `completion_tokens`) with content in `gen_ai.content.prompt` / `.completion` events.
- `openinference`: Arize OpenInference (`openinference.span.kind`, `llm.model_name`,
  `llm.token_count.*`, flattened `llm.input_messages.*`); failures carry only an
  `exception` event, no `error.type`.
- `openllmetry`: Traceloop OpenLLMetry (`traceloop.span.kind`, `traceloop.workflow.name`,
  `llm.request.type`, `gen_ai.usage.*` plus `llm.usage.total_tokens`, indexed
  `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`).

The output is column-wise (`SpanColumns`): constant attributes once per block, the
others as lists where None means "attribute absent on this span".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import company
from .engine import FAILED, OUTCOMES, Runs, StepBlock

INTERNAL, SERVER, CLIENT = 1, 2, 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
FLAGS_HAS_IS_REMOTE = 0x100

Event = tuple[str, int, list[tuple[str, Any]]]


@dataclass
class SpanColumns:
    """Spans of one block, ready to encode; per-span lists are aligned with `start_ns`."""

    scope: list[str]
    name: list[str]
    kind: int
    trace_id: list[bytes]
    span_id: list[bytes]
    parent_span_id: list[bytes | None]
    start_ns: np.ndarray
    end_ns: np.ndarray
    status_code: list[int]
    status_message: list[str | None]
    version: list[str]
    const_attrs: list[tuple[str, Any]] = field(default_factory=list)
    attrs: list[tuple[str, list[Any]]] = field(default_factory=list)
    events: list[list[Event] | None] | None = None

    def __len__(self) -> int:
        return len(self.start_ns)


ANTHROPIC_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
OPENAI_SERVER = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


def _finish(block: StepBlock) -> list[str | None]:
    out = []
    for f, p in zip(block.data["finish_reason"], block.data["provider"], strict=True):
        out.append(None if f is None else (ANTHROPIC_FINISH.get(f, f) if p == "anthropic" else f))
    return out


def _tokens(values: np.ndarray, positive_only: bool = False) -> list[int | None]:
    limit = 1 if positive_only else 0
    return [v if v >= limit else None for v in values.tolist()]


def _messages(texts: list[str | None], role: str, finishes: list[str | None] | None = None
              ) -> list[str | None]:
    out: list[str | None] = []
    for i, text in enumerate(texts):
        if text is None:
            out.append(None)
            continue
        message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
        if finishes is not None:
            message["finish_reason"] = finishes[i]
        out.append(json.dumps([message], separators=(",", ":")))
    return out


def _error_columns(block: StepBlock, with_error_type: bool) -> list[tuple[str, list[Any]]]:
    cols: list[tuple[str, list[Any]]] = [
        ("http.response.status_code", [h if h else None for h in block.http_status.tolist()]),
    ]
    if with_error_type:
        cols.insert(0, ("error.type", list(block.error_type)))
    return cols


def _exception_events(block: StepBlock) -> list[list[Event] | None]:
    return [None if t is None else [("exception", end, [("exception.type", t),
                                                        ("exception.message", m)])]
            for t, m, end in zip(block.error_type, block.error_message, block.end_ns.tolist(),
                                 strict=True)]


def to_spans(service: company.Service, block: StepBlock, runs: Runs, versions: list[str]
             ) -> SpanColumns:
    """Encode one block in its service's convention."""
    n = len(block)
    run = block.run.tolist()
    ok_status = STATUS_OK if service.convention == "openinference" else STATUS_UNSET
    failed = block.failed.tolist()
    cols = SpanColumns(
        scope=["app"] * n, name=[block.step] * n, kind=INTERNAL,
        trace_id=[runs.trace_id[r] for r in run], span_id=block.span_id,
        parent_span_id=[None if block.kind == "root" else runs.root_span_id[r] for r in run],
        start_ns=block.start_ns, end_ns=block.end_ns,
        status_code=[STATUS_ERROR if f else ok_status for f in failed],
        status_message=list(block.error_message), version=[versions[r] for r in run],
    )
    if block.kind == "root":
        if service.convention == "openinference":  # OK unless the agent gave up
            cols.status_code = [STATUS_UNSET if o == FAILED else STATUS_OK
                                for o in block.data["outcome"].tolist()]
        _root(service, block, runs, cols)
    elif block.kind in ("llm", "embedding"):
        _model_call(service, block, cols)
    elif block.kind == "tool":
        _tool(service, block, cols)
    else:
        _guardrail(service, block, cols)
    if block.kind != "root":
        cols.attrs += _error_columns(block, service.convention != "openinference")
        cols.events = _exception_events(block) if cols.events is None else cols.events
    return cols


def _root(service: company.Service, block: StepBlock, runs: Runs, cols: SpanColumns) -> None:
    wf = block.step
    run = block.run.tolist()
    tenant = [company.TENANTS[runs.tenant[r]] for r in run]
    users = [runs.user_id[r] for r in run]
    sessions = [runs.session_id[r] for r in run]
    outcome = [OUTCOMES[o] for o in block.data["outcome"].tolist()]
    extra = [(k, v) for k, v in block.data.items() if k != "outcome"]
    conv = service.convention
    if conv == "otel_genai":
        op = "invoke_workflow" if wf == "weekly_report" else "invoke_agent"
        cols.name = [f"{op} {wf}"] * len(cols)
        cols.const_attrs = [("gen_ai.operation.name", op),
                            ("gen_ai.workflow.name" if op == "invoke_workflow"
                             else "gen_ai.agent.name", wf)]
        cols.attrs = [("gen_ai.conversation.id", sessions), ("user.id", users)]
    elif conv == "openllmetry":
        cols.name = [f"{wf}.workflow"] * len(cols)
        cols.const_attrs = [("traceloop.span.kind", "workflow"), ("traceloop.workflow.name", wf),
                            ("traceloop.entity.name", wf)]
        cols.attrs = [("traceloop.association.properties.session_id", sessions),
                      ("traceloop.association.properties.user_id", users)]
    elif conv == "openinference":
        cols.const_attrs = [("openinference.span.kind", "AGENT"), ("agent.name", wf)]
        cols.attrs = [("session.id", sessions), ("user.id", users)]
    else:
        cols.kind = SERVER
        cols.const_attrs = [("agent.name", wf)]
        cols.attrs = [("session.id", sessions), ("user.id", users)]
    cols.attrs += [("tenant.id", tenant), ("task.outcome", outcome)]
    cols.attrs += [(k, list(v)) for k, v in extra]


def _model_call(service: company.Service, block: StepBlock, cols: SpanColumns) -> None:
    d = block.data
    n = len(block)
    conv = service.convention
    embedding = block.kind == "embedding"
    cols.kind = CLIENT
    cols.scope = list(d["provider"])
    request, response = d["request_model"], d["response_model"]
    ok = [not f for f in block.failed.tolist()]
    response = [r if k else None for r, k in zip(response, ok, strict=True)]
    tin, tout = _tokens(d["input_tokens"]), _tokens(d["output_tokens"])
    cached, writes = _tokens(d["cached_tokens"], True), _tokens(d["cache_write_tokens"], True)
    finish = _finish(block) if not embedding else [None] * n
    prompt, completion = d["prompt"], d["completion"]
    if conv in ("otel_genai", "otel_genai_legacy"):
        op = "embeddings" if embedding else "chat"
        cols.name = [f"{op} {m}" for m in request]
        cols.const_attrs = [("gen_ai.operation.name", op)]
        provider_key = "gen_ai.provider.name" if conv == "otel_genai" else "gen_ai.system"
        cols.attrs = [(provider_key, list(d["provider"])), ("gen_ai.request.model", request),
                      ("gen_ai.response.model", response),
                      ("server.address", [OPENAI_SERVER[p] for p in d["provider"]])]
        if not embedding:
            cols.const_attrs.append(("gen_ai.request.max_tokens", 1024))
            cols.attrs.append(("gen_ai.response.finish_reasons",
                               [None if f is None else [f] for f in finish]))
        if conv == "otel_genai":
            cols.attrs += [("gen_ai.usage.input_tokens", tin), ("gen_ai.usage.output_tokens", tout),
                           ("gen_ai.usage.cache_read.input_tokens", cached),
                           ("gen_ai.usage.cache_creation.input_tokens", writes),
                           ("gen_ai.input.messages", _messages(prompt, "user")),
                           ("gen_ai.output.messages", _messages(completion, "assistant", finish))]
        else:
            cols.attrs += [("gen_ai.usage.prompt_tokens", tin),
                           ("gen_ai.usage.completion_tokens", tout)]
            cols.events = []
            for i in range(n):
                events: list[Event] = [("gen_ai.content.prompt", int(block.start_ns[i]),
                                        [("gen_ai.prompt", json.dumps(
                                            [{"role": "user", "content": prompt[i]}]))])]
                if completion[i] is not None:
                    events.append(("gen_ai.content.completion", int(block.end_ns[i]),
                                   [("gen_ai.completion", json.dumps(
                                       [{"role": "assistant", "content": completion[i]}]))]))
                if block.error_type[i] is not None:
                    events.append(("exception", int(block.end_ns[i]),
                                   [("exception.type", block.error_type[i]),
                                    ("exception.message", block.error_message[i])]))
                cols.events.append(events)
    elif conv == "openllmetry":
        cols.name = ["openai.embeddings" if embedding else "openai.chat"] * n
        total = [None if a is None else a + (b or 0) for a, b in zip(tin, tout, strict=True)]
        cols.const_attrs = [("llm.request.type", "embedding" if embedding else "chat"),
                            ("traceloop.workflow.name", "kb_answer")]
        cols.attrs = [("gen_ai.system", list(d["provider"])), ("gen_ai.request.model", request),
                      ("gen_ai.response.model", response),
                      ("gen_ai.usage.input_tokens", tin),
                      ("gen_ai.usage.output_tokens", None if embedding else tout),
                      ("gen_ai.usage.cache_read_input_tokens", cached),
                      ("llm.usage.total_tokens", total),
                      ("gen_ai.prompt.0.role", ["user"] * n),
                      ("gen_ai.prompt.0.content", prompt)]
        if not embedding:
            cols.const_attrs += [("gen_ai.request.max_tokens", 1024), ("llm.is_streaming", False)]
            cols.attrs += [("gen_ai.completion.0.role", [None if c is None else "assistant"
                                                         for c in completion]),
                           ("gen_ai.completion.0.content", completion),
                           ("gen_ai.completion.0.finish_reason", finish)]
        cols.attrs = [(k, v) for k, v in cols.attrs if v is not None]
    else:  # openinference
        cols.name = ["Messages"] * n
        cols.kind = INTERNAL
        total = [None if a is None else a + (b or 0) for a, b in zip(tin, tout, strict=True)]
        cols.const_attrs = [("openinference.span.kind", "LLM"), ("llm.provider", "anthropic"),
                            ("llm.system", "anthropic")]
        cols.attrs = [("llm.model_name", [r or q for r, q in zip(response, request, strict=True)]),
                      ("llm.invocation_parameters",
                       [json.dumps({"model": m, "max_tokens": 1024}) for m in request]),
                      ("llm.token_count.prompt", tin), ("llm.token_count.completion", tout),
                      ("llm.token_count.total", total),
                      ("llm.token_count.prompt_details.cache_read", cached),
                      ("llm.input_messages.0.message.role", ["user"] * n),
                      ("llm.input_messages.0.message.content", prompt),
                      ("llm.output_messages.0.message.role",
                       [None if c is None else "assistant" for c in completion]),
                      ("llm.output_messages.0.message.content", completion),
                      ("llm.finish_reason", finish)]
    cols.scope = list(d["provider"])


def _tool(service: company.Service, block: StepBlock, cols: SpanColumns) -> None:
    tool = block.data["tool"]
    args, result = block.data["arguments"], block.data["result"]
    conv = service.convention
    if conv in ("otel_genai", "otel_genai_legacy"):
        cols.name = [f"execute_tool {tool}"] * len(cols)
        cols.const_attrs = [("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", tool),
                            ("gen_ai.tool.type", "function")]
        cols.attrs = [("gen_ai.tool.call.arguments", args), ("gen_ai.tool.call.result", result)]
    elif conv == "openllmetry":
        cols.name = [f"{tool}.tool"] * len(cols)
        cols.const_attrs = [("traceloop.span.kind", "tool"), ("traceloop.entity.name", tool),
                            ("traceloop.workflow.name", "kb_answer")]
        cols.attrs = [("traceloop.entity.input",
                       [json.dumps({"args": [], "kwargs": json.loads(a)}) for a in args]),
                      ("traceloop.entity.output", result)]
    else:
        cols.name = [tool] * len(cols)
        cols.const_attrs = [("openinference.span.kind", "TOOL"), ("tool.name", tool),
                            ("input.mime_type", "application/json")]
        cols.attrs = [("input.value", args), ("output.value", result),
                      ("output.mime_type", [None if r is None else "application/json"
                                            for r in result])]


def _guardrail(service: company.Service, block: StepBlock, cols: SpanColumns) -> None:
    if service.convention == "openllmetry":
        cols.name = [f"{block.step}.task"] * len(cols)
        cols.const_attrs = [("traceloop.span.kind", "task"), ("traceloop.entity.name", block.step),
                            ("traceloop.workflow.name", "kb_answer"),
                            ("traceloop.entity.output", json.dumps(block.data["result"]))]
    else:
        cols.const_attrs = [("openinference.span.kind", "GUARDRAIL"),
                            ("output.value", block.data["result"])]
