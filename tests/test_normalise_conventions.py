"""Each instrumentation convention maps onto the same step fields.

Spans are built as real OTLP protobuf requests and go through the decoder and
`normalise`, exactly as `stepscope ingest` runs them.
"""

from __future__ import annotations

import json

from normalise_helpers import by_name, config, one, steps
from otlp_builders import SPAN_KIND_CLIENT, STATUS_ERROR, T0, event, exception_event, span


def llm(name: str = "chat gpt-4o-mini", **attributes) -> list:
    return [span(name, trace=1, span=1, kind=SPAN_KIND_CLIENT, attributes=attributes)]


# -- OpenTelemetry GenAI -------------------------------------------------------------------


def test_otel_genai_current_keys():
    row = one(llm(**{
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_creation.input_tokens": 150,
        "gen_ai.usage.reasoning.output_tokens": 120,
        "gen_ai.response.finish_reasons": ["tool_calls", "stop"],
        "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.conversation.id": "conv-7",
        "gen_ai.agent.name": "triager",
        "user.id": "u-1",
        "gen_ai.input.messages": json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Printer offline?"}]},
        ]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "Reinstall the driver."}],
             "finish_reason": "stop"},
        ]),
    }))
    assert (row["step_kind"], row["operation"]) == ("llm", "chat")
    assert (row["request_model"], row["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert row["provider"] == "openai"
    assert (row["input_tokens"], row["output_tokens"]) == (1200, 300)
    assert (row["cached_input_tokens"], row["cache_write_tokens"]) == (1000, 150)
    assert row["reasoning_tokens"] == 120
    assert row["finish_reason"] == "tool_call"
    assert row["ttft_ms"] == 250.0
    assert (row["session_id"], row["user_id"], row["agent_name"]) == ("conv-7", "u-1", "triager")
    assert row["input_content"] == "Be brief.\nPrinter offline?"
    assert row["output_content"] == "Reinstall the driver."


def test_otel_genai_deprecated_keys_and_provider_names():
    rows = steps([
        span("chat a", trace=1, span=1, attributes={
            "gen_ai.system": "az.ai.openai", "gen_ai.operation.name": "chat",
            "gen_ai.usage.prompt_tokens": 80, "gen_ai.usage.completion_tokens": 20}),
        span("chat b", trace=1, span=2, attributes={
            "gen_ai.system": "xai", "gen_ai.operation.name": "text_completion"}),
        span("chat c", trace=1, span=3, attributes={
            "gen_ai.system": "vertex_ai", "gen_ai.provider.name": "GCP.Gemini",
            "gen_ai.operation.name": "generate_content"}),
    ])
    a, b, c = rows
    assert (a["provider"], a["input_tokens"], a["output_tokens"]) == ("azure.ai.openai", 80, 20)
    assert (b["provider"], b["step_kind"]) == ("x_ai", "llm")
    assert (c["provider"], c["step_kind"]) == ("gcp.gemini", "llm")


def test_otel_genai_operation_names_map_to_kinds():
    ops = ["chat", "embeddings", "execute_tool", "invoke_agent", "create_agent",
           "invoke_workflow", "retrieval", "rerank", "agent_step", "something_new"]
    rows = steps([span(f"op {op}", trace=1, span=i + 1, parent=99,
                       attributes={"gen_ai.operation.name": op}) for i, op in enumerate(ops)])
    assert [(r["operation"], r["step_kind"]) for r in rows] == [
        ("chat", "llm"), ("embeddings", "embedding"), ("execute_tool", "tool"),
        ("invoke_agent", "agent"), ("create_agent", "other"), ("invoke_workflow", "workflow"),
        ("retrieval", "retrieval"), ("rerank", "retrieval"), ("agent_step", "workflow"),
        ("something_new", "other"),
    ]


def test_semconv_span_names_decide_when_no_kind_attribute():
    rows = steps([
        span("invoke_agent support", trace=1, span=1, parent=99),
        span("execute_tool kb_search", trace=1, span=2, parent=99,
             attributes={"gen_ai.tool.name": "kb_search", "gen_ai.tool.call.id": "call_1"}),
        span("chat gpt-4o", trace=1, span=3, parent=99),
        span("embeddings text-embedding-3-small", trace=1, span=4, parent=99),
        span("render page", trace=1, span=5, parent=99),
        span("POST /triage", trace=1, span=6),
    ])
    assert [r["step_kind"] for r in rows] == ["agent", "tool", "llm", "embedding", "other",
                                              "workflow"]
    assert (rows[1]["tool_name"], rows[1]["tool_call_id"]) == ("kb_search", "call_1")


def test_errors_from_error_type_exception_event_and_status():
    rows = steps([
        span("chat a", trace=1, span=1, status=STATUS_ERROR,
             status_message="Error code: 429 - Rate limit reached",
             attributes={"gen_ai.operation.name": "chat", "error.type": "RateLimitError"}),
        span("chat b", trace=1, span=2, status=STATUS_ERROR, status_message="boom",
             attributes={"gen_ai.operation.name": "chat"},
             events=[exception_event("openai.AuthenticationError", "Incorrect API key", T0)]),
        span("http c", trace=1, span=3, attributes={"http.response.status_code": 200}),
        span("http d", trace=1, span=4, status=STATUS_ERROR,
             attributes={"http.status_code": "503"}),
        span("chat e", trace=1, span=5, status=STATUS_ERROR, status_message="upstream failed",
             attributes={"error.type": "anthropic.OverloadedError"}),
    ])
    a, b, c, d, e = rows
    assert (a["error_type"], a["http_status"]) == ("RateLimitError", 429)
    assert a["error_message"] == "Error code: 429 - Rate limit reached"
    assert (b["error_type"], b["error_message"], b["http_status"]) == (
        "openai.AuthenticationError", "Incorrect API key", 401)
    assert (c["http_status"], c["error_type"], c["status_code"]) == (200, None, "unset")
    assert (d["http_status"], d["status_code"]) == (503, "error")
    assert (e["http_status"], e["error_message"]) == (529, "upstream failed")


def test_service_and_environment_from_resource_then_span():
    rows = steps([span("step", trace=1, span=1, attributes={"langfuse.environment": "dev"})],
                 resource={"service.name": "billing", "service.version": "2.0",
                           "deployment.environment": "prod"})
    assert (rows[0]["service_name"], rows[0]["service_version"], rows[0]["environment"]) == (
        "billing", "2.0", "prod")
    rows = steps([span("step", trace=1, span=1, attributes={"langfuse.environment": "dev"})],
                 resource={"service.name": "billing"})
    assert rows[0]["environment"] == "dev"


# -- OpenInference -------------------------------------------------------------------------


def test_openinference_span_kinds_and_fields():
    rows = by_name(steps([
        span("LangGraph", trace=1, span=1, attributes={
            "openinference.span.kind": "CHAIN", "session.id": "s-1", "user.id": "u-1"}),
        span("ChatCompletion", trace=1, span=2, parent=1, attributes={
            "openinference.span.kind": "LLM",
            "llm.system": "openai", "llm.provider": "azure",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.invocation_parameters": json.dumps({"model": "gpt-4o-mini", "temperature": 0}),
            "llm.token_count.prompt": 260, "llm.token_count.completion": 35,
            "llm.token_count.total": 295, "llm.token_count.prompt_details.cache_read": 256,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.cost.total": 0.00042, "llm.finish_reason": "stop",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are support.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Printer offline",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Reinstall the driver.",
            "input.value": "{\"messages\": []}", "output.value": "{\"id\": \"x\"}"}),
        span("kb_search", trace=1, span=3, parent=1, attributes={
            "openinference.span.kind": "TOOL", "tool.name": "kb_search",
            "tool.id": "call_9", "input.value": "printer offline"}),
        span("retrieve", trace=1, span=4, parent=1, attributes={"openinference.span.kind": "RETRIEVER"}),
        span("rerank", trace=1, span=5, parent=1, attributes={"openinference.span.kind": "RERANKER"}),
        span("guard", trace=1, span=6, parent=1, attributes={"openinference.span.kind": "GUARDRAIL"}),
        span("judge", trace=1, span=7, parent=1, attributes={"openinference.span.kind": "EVALUATOR"}),
        span("planner", trace=1, span=8, parent=1, attributes={
            "openinference.span.kind": "AGENT", "agent.name": "planner"}),
        span("embed", trace=1, span=9, parent=1, attributes={
            "openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
            "embedding.invocation_parameters": json.dumps({"model": "text-embedding-3-small"}),
            "embedding.embeddings.0.embedding.text": "printer offline",
            "llm.token_count.prompt": 3, "output.value": "[0.1, 0.2]"}),
    ]))
    assert {n: r["step_kind"] for n, r in rows.items()} == {
        "LangGraph": "workflow", "ChatCompletion": "llm", "kb_search": "tool",
        "retrieve": "retrieval", "rerank": "retrieval", "guard": "guardrail",
        "judge": "evaluator", "planner": "agent", "embed": "embedding"}
    chat = rows["ChatCompletion"]
    assert chat["operation"] == "LLM"
    assert (chat["request_model"], chat["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert chat["provider"] == "azure"
    assert (chat["input_tokens"], chat["output_tokens"], chat["cached_input_tokens"]) == (260, 35, 256)
    assert chat["reasoning_tokens"] == 0
    assert chat["reported_cost_usd"] == 0.00042
    assert chat["finish_reason"] == "stop"
    assert chat["input_content"] == "You are support.\nPrinter offline"
    assert chat["output_content"] == "Reinstall the driver."
    assert (rows["kb_search"]["tool_name"], rows["kb_search"]["tool_call_id"]) == ("kb_search", "call_9")
    assert rows["kb_search"]["input_content"] == "printer offline"
    assert rows["planner"]["agent_name"] == "planner"
    assert (rows["LangGraph"]["session_id"], rows["LangGraph"]["user_id"]) == ("s-1", "u-1")
    embed = rows["embed"]
    assert (embed["request_model"], embed["response_model"]) == (
        "text-embedding-3-small", "text-embedding-3-small")
    assert (embed["input_tokens"], embed["input_content"], embed["output_content"]) == (
        3, "printer offline", None)


# -- OpenLLMetry / Traceloop ---------------------------------------------------------------


def test_openllmetry_old_keys():
    rows = by_name(steps([
        span("support.workflow", trace=1, span=1, attributes={
            "traceloop.span.kind": "workflow", "traceloop.workflow.name": "support",
            "traceloop.entity.name": "support"}),
        span("classify.task", trace=1, span=2, parent=1, attributes={
            "traceloop.span.kind": "task", "traceloop.entity.name": "classify",
            "traceloop.entity.input": json.dumps({"args": ["ticket"], "kwargs": {}})}),
        span("openai.chat", trace=1, span=3, parent=2, kind=SPAN_KIND_CLIENT, attributes={
            "llm.request.type": "chat", "llm.vendor": "OpenAI",
            "llm.request.model": "gpt-3.5-turbo", "llm.response.model": "gpt-3.5-turbo-0125",
            "llm.usage.prompt_tokens": 50, "llm.usage.completion_tokens": 10,
            "llm.usage.total_tokens": 60,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Classify: printer",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hardware",
            "gen_ai.completion.0.finish_reason": "stop",
            "traceloop.association.properties.user_id": "u-9",
            "traceloop.association.properties.session_id": "s-9"}),
        span("kb_search.tool", trace=1, span=4, parent=2, attributes={
            "traceloop.span.kind": "tool", "traceloop.entity.name": "kb_search"}),
        span("triager.agent", trace=1, span=5, parent=1, attributes={
            "traceloop.span.kind": "agent", "traceloop.entity.name": "triager"}),
    ]))
    assert rows["support.workflow"]["step_kind"] == "workflow"
    assert rows["support.workflow"]["workflow"] == "support"
    assert (rows["classify.task"]["step_kind"], rows["classify.task"]["operation"]) == ("workflow", "task")
    assert rows["classify.task"]["tool_name"] is None
    chat = rows["openai.chat"]
    assert (chat["step_kind"], chat["operation"], chat["provider"]) == ("llm", "chat", "openai")
    assert (chat["request_model"], chat["response_model"]) == ("gpt-3.5-turbo", "gpt-3.5-turbo-0125")
    assert (chat["input_tokens"], chat["output_tokens"]) == (50, 10)
    assert (chat["input_content"], chat["output_content"]) == ("Classify: printer", "hardware")
    assert chat["finish_reason"] == "stop"
    assert (chat["user_id"], chat["session_id"]) == ("u-9", "s-9")
    assert (rows["kb_search.tool"]["step_kind"], rows["kb_search.tool"]["tool_name"]) == ("tool", "kb_search")
    assert (rows["triager.agent"]["step_kind"], rows["triager.agent"]["agent_name"]) == ("agent", "triager")


def test_openllmetry_new_keys():
    row = one(llm("openai.chat", **{
        "gen_ai.operation.name": "chat", "llm.request.type": "chat",
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "o3-mini",
        "gen_ai.response.model": "o3-mini-2025-01-31",
        "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 900,
        "gen_ai.usage.total_tokens": 1400, "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning_tokens": 700,
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Plan the fix"}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "kb",
                                              "arguments": {}}], "finish_reason": "tool_call"}]),
    }))
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (500, 900, 700)
    assert row["cached_input_tokens"] == 0
    assert row["finish_reason"] == "tool_call"
    assert row["input_content"] == "Plan the fix"
    # A tool-call-only answer has no text part: the message JSON is kept.
    assert json.loads(row["output_content"])[0]["parts"][0]["name"] == "kb"


def test_openllmetry_anthropic_underscore_cache_keys():
    row = one(llm("anthropic.chat", **{
        "llm.request.type": "completion", "gen_ai.system": "Anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet-20241022",
        "gen_ai.usage.input_tokens": 2100, "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.cache_read_input_tokens": 2000,
        "gen_ai.usage.cache_creation_input_tokens": 0}))
    assert (row["provider"], row["step_kind"]) == ("anthropic", "llm")
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (2100, 2000, 0)


# -- Vercel AI SDK -------------------------------------------------------------------------


def vercel_trace(inner: dict, outer: dict | None = None, provider: str = "openai.chat") -> list:
    common = {"ai.model.id": "gpt-4o-mini", "ai.model.provider": provider,
              "ai.telemetry.functionId": "triage",
              "ai.telemetry.metadata.userId": "u-3", "ai.telemetry.metadata.sessionId": "s-3"}
    return [
        span("ai.generateText", trace=1, span=1, attributes={
            "ai.operationId": "ai.generateText", "operation.name": "ai.generateText triage",
            **common, **(outer or {})}),
        span("ai.generateText.doGenerate", trace=1, span=2, parent=1, kind=SPAN_KIND_CLIENT,
             attributes={"ai.operationId": "ai.generateText.doGenerate",
                         "operation.name": "ai.generateText.doGenerate triage",
                         **common, **inner}),
        span("ai.toolCall", trace=1, span=3, parent=1, attributes={
            "ai.operationId": "ai.toolCall", "ai.toolCall.name": "kb_search",
            "ai.toolCall.id": "call_v1", "ai.toolCall.args": "{\"q\":\"printer\"}"}),
    ]


def test_vercel_v4():
    rows = steps(vercel_trace(
        {"ai.usage.promptTokens": 120, "ai.usage.completionTokens": 30,
         "ai.response.finishReason": "tool-calls", "ai.response.model": "gpt-4o-mini-2024-07-18",
         "ai.prompt.messages": json.dumps([{"role": "user", "content": [
             {"type": "text", "text": "Printer offline"}]}]),
         "ai.response.text": "Try reinstalling.", "ai.response.msToFirstChunk": 310.5},
        {"ai.usage.promptTokens": 120, "ai.usage.completionTokens": 30,
         "ai.prompt": json.dumps({"prompt": "Printer offline"})}))
    outer, call, tool = rows
    assert (outer["step_kind"], outer["operation"]) == ("agent", "ai.generateText")
    assert (outer["input_tokens"], outer["output_tokens"]) == (None, None)
    assert outer["workflow"] == "triage"
    assert outer["input_content"] == "Printer offline"
    assert (call["step_kind"], call["provider"]) == ("llm", "openai")
    assert (call["request_model"], call["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (call["input_tokens"], call["output_tokens"]) == (120, 30)
    assert call["finish_reason"] == "tool_call"
    assert call["ttft_ms"] == 310.5
    assert (call["user_id"], call["session_id"]) == ("u-3", "s-3")
    assert (call["input_content"], call["output_content"]) == ("Printer offline", "Try reinstalling.")
    assert (tool["step_kind"], tool["tool_name"], tool["tool_call_id"]) == ("tool", "kb_search", "call_v1")


def test_vercel_v5_openai_input_includes_cache():
    call = steps(vercel_trace({
        "ai.usage.inputTokens": 1200, "ai.usage.outputTokens": 80, "ai.usage.totalTokens": 1280,
        "ai.usage.cachedInputTokens": 1024, "ai.usage.reasoningTokens": 64,
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
        "gen_ai.system": "openai.chat"}))[1]
    assert call["provider"] == "openai"
    assert (call["input_tokens"], call["cached_input_tokens"]) == (1200, 1024)
    assert (call["output_tokens"], call["reasoning_tokens"]) == (80, 64)


def test_vercel_v5_anthropic_input_excludes_cache():
    call = steps(vercel_trace({
        "ai.usage.inputTokens": 12, "ai.usage.outputTokens": 80,
        "ai.usage.cachedInputTokens": 3, "gen_ai.usage.input_tokens": 12,
        "ai.response.providerMetadata": json.dumps({"anthropic": {"cacheCreationInputTokens": 5}}),
        "gen_ai.system": "anthropic.messages"}, provider="anthropic.messages"))[1]
    assert call["provider"] == "anthropic"
    assert (call["input_tokens"], call["cached_input_tokens"], call["cache_write_tokens"]) == (20, 3, 5)


def test_vercel_v6_token_details():
    call = steps(vercel_trace({
        "ai.usage.inputTokens": 20, "ai.usage.outputTokens": 80,
        "ai.usage.inputTokenDetails.noCacheTokens": 12,
        "ai.usage.inputTokenDetails.cacheReadTokens": 3,
        "ai.usage.inputTokenDetails.cacheWriteTokens": 5,
        "ai.usage.outputTokenDetails.textTokens": 60,
        "ai.usage.outputTokenDetails.reasoningTokens": 20}, provider="anthropic.messages"))[1]
    assert (call["input_tokens"], call["cached_input_tokens"], call["cache_write_tokens"]) == (20, 3, 5)
    assert (call["output_tokens"], call["reasoning_tokens"]) == (80, 20)


def test_vercel_embeddings():
    rows = steps([
        span("ai.embedMany", trace=1, span=1, attributes={
            "ai.operationId": "ai.embedMany", "ai.usage.tokens": 42,
            "ai.model.id": "text-embedding-3-small", "ai.model.provider": "openai.embedding"}),
        span("ai.embedMany.doEmbed", trace=1, span=2, parent=1, attributes={
            "ai.operationId": "ai.embedMany.doEmbed", "ai.usage.tokens": 42,
            "ai.model.id": "text-embedding-3-small", "ai.model.provider": "openai.embedding"}),
    ])
    assert [(r["step_kind"], r["input_tokens"], r["provider"]) for r in rows] == [
        ("workflow", None, "openai"), ("embedding", 42, "openai")]


# -- Logfire / Pydantic AI -----------------------------------------------------------------


def test_pydantic_ai_and_logfire():
    rows = by_name(steps([
        span("invoke_agent support_agent", trace=1, span=1, attributes={
            "gen_ai.agent.name": "support_agent", "logfire.msg": "support_agent run",
            "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 120,
            "operation.cost": 0.0031, "final_result": "Reinstall the driver."}),
        span("chat gpt-4o", trace=1, span=2, parent=1, kind=SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 120,
            "operation.cost": 0.0031, "logfire.span_type": "span"}),
        span("execute_tool kb_search", trace=1, span=3, parent=1, attributes={
            "gen_ai.tool.name": "kb_search", "gen_ai.tool.call.id": "call_p1",
            "gen_ai.tool.call.arguments": "{\"q\": \"printer\"}"}),
        span("agent run", trace=2, span=4, attributes={"agent_name": "legacy_agent",
                                                       "model_name": "gpt-4o"}),
        span("running tool", trace=2, span=5, parent=4, attributes={
            "gen_ai.tool.name": "lookup", "tool_arguments": "{}"}),
    ]))
    agent = rows["invoke_agent support_agent"]
    assert (agent["step_kind"], agent["agent_name"]) == ("agent", "support_agent")
    assert (agent["input_tokens"], agent["reported_cost_usd"]) == (None, None)
    assert agent["workflow"] == "support_agent"
    chat = rows["chat gpt-4o"]
    assert (chat["step_kind"], chat["provider"], chat["input_tokens"]) == ("llm", "openai", 900)
    assert chat["reported_cost_usd"] == 0.0031
    tool = rows["execute_tool kb_search"]
    assert (tool["step_kind"], tool["tool_name"], tool["tool_call_id"]) == ("tool", "kb_search", "call_p1")
    assert (rows["agent run"]["step_kind"], rows["agent run"]["agent_name"]) == ("agent", "legacy_agent")
    assert (rows["running tool"]["step_kind"], rows["running tool"]["tool_name"]) == ("tool", "lookup")


# -- Langfuse ------------------------------------------------------------------------------


def test_langfuse_observations():
    cfg = config(prompt={"name_attributes": ["langfuse.observation.prompt.name"],
                         "version_attributes": ["langfuse.observation.prompt.version"]})
    rows = by_name(steps([
        span("triage", trace=1, span=1, attributes={"langfuse.observation.type": "span",
                                                    "langfuse.trace.name": "triage"}),
        span("answer", trace=1, span=2, parent=1, attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "claude-3-5-haiku-20241022",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 100, "output": 20, "cache_read_input_tokens": 300,
                 "cache_creation_input_tokens": 50}),
            "langfuse.observation.cost_details": json.dumps(
                {"input": 0.001, "output": 0.002, "total": 0.004}),
            "langfuse.observation.prompt.name": "answer-v2",
            "langfuse.observation.prompt.version": "7",
            "langfuse.observation.input": json.dumps("Printer offline"),
            "langfuse.observation.output": json.dumps({"text": "Reinstall"}),
            "langfuse.observation.completion_start_time": json.dumps("2026-11-10T09:00:00.120Z"),
            "session.id": "s-5", "user.id": "u-5"}),
        span("openai-raw", trace=1, span=3, parent=1, attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": json.dumps(
                {"prompt_tokens": 400, "completion_tokens": 20, "total_tokens": 420}),
            "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002})}),
        span("lookup", trace=1, span=4, parent=1, attributes={"langfuse.observation.type": "tool"}),
        span("failing", trace=1, span=5, parent=1, attributes={
            "langfuse.observation.type": "generation", "langfuse.observation.level": "ERROR",
            "langfuse.observation.status_message": "model overloaded"}),
    ], cfg))
    assert rows["triage"]["step_kind"] == "workflow"
    answer = rows["answer"]
    assert answer["step_kind"] == "llm"
    assert answer["request_model"] == "claude-3-5-haiku-20241022"
    assert (answer["input_tokens"], answer["output_tokens"]) == (450, 20)
    assert (answer["cached_input_tokens"], answer["cache_write_tokens"]) == (300, 50)
    assert answer["reported_cost_usd"] == 0.004
    assert (answer["prompt_name"], answer["prompt_version"]) == ("answer-v2", "7")
    assert answer["input_content"] == "Printer offline"
    assert answer["output_content"] == '{"text": "Reinstall"}'
    assert answer["ttft_ms"] == 120.0
    assert (answer["session_id"], answer["user_id"]) == ("s-5", "u-5")
    raw = rows["openai-raw"]
    assert (raw["input_tokens"], raw["output_tokens"], raw["reported_cost_usd"]) == (400, 20, 0.003)
    assert rows["lookup"]["step_kind"] == "tool"
    assert rows["failing"]["error_message"] == "model overloaded"


# -- content events ------------------------------------------------------------------------


def test_content_from_span_events():
    row = one([span("chat gpt-4", trace=1, span=1, attributes={"gen_ai.operation.name": "chat"},
                    events=[event("gen_ai.content.prompt", T0, {"gen_ai.prompt": "Hello?"}),
                            event("gen_ai.content.completion", T0 + 5,
                                  {"gen_ai.completion": "Hi there"})])])
    assert (row["input_content"], row["output_content"]) == ("Hello?", "Hi there")


def test_flattened_messages_join_in_message_order_however_many():
    few = {f"gen_ai.prompt.{i}.content": f"m{i}" for i in (10, 2, 0, 1)}
    many = {f"llm.input_messages.{i}.message.content": f"m{i}" for i in range(40)}
    row = one([span("chat a", trace=1, span=1, attributes={"llm.request.type": "chat", **few})])
    assert row["input_content"] == "m0\nm1\nm2\nm10"
    row = one([span("chat b", trace=1, span=2, attributes={
        "openinference.span.kind": "LLM", **many})])
    assert row["input_content"] == "\n".join(f"m{i}" for i in range(40))


def test_text_that_only_looks_like_json_is_taken_as_text():
    # Redaction can make a message start with "[": it is text, not a JSON array.
    row = one([span("chat gpt-4o", trace=1, span=1, parent=9, attributes={
        "gen_ai.operation.name": "chat",
        "llm.invocation_parameters": "[model: gpt-4o",
        "gen_ai.input.messages": "[REDACTED:email] wrote about order 7",
        "gen_ai.output.messages": "[1, 2",
        "langfuse.observation.usage_details": "{not json",
        "langfuse.observation.cost_details": "{also not json",
        "langfuse.observation.input": '"unterminated',
    })], config(privacy={"content": "keep"}))
    assert row["input_content"] == "[REDACTED:email] wrote about order 7"
    assert row["output_content"] == "[1, 2"
    assert row["request_model"] is None  # parameters given as broken JSON name no model
    assert row["finish_reason"] is None
    assert row["reported_cost_usd"] is None


def test_message_text_is_never_a_finish_reason():
    # gen_ai.output.messages is JSON by the conventions; given as plain text, it is the
    # output content, and no finish reason can be read from it.
    row = one(llm("chat gpt-4o", **{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.output.messages": "Stop. Reinstall the driver, then restart the printer.",
    }), config(privacy={"content": "keep"}))
    assert row["finish_reason"] is None
    assert row["output_content"] == "Stop. Reinstall the driver, then restart the printer."
    row = one(llm("chat gpt-4o", **{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.finish_reasons": "length",  # a plain scalar where JSON is usual
    }))
    assert row["finish_reason"] == "length"
