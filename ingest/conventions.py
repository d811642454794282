"""Which span attribute feeds which step field, in precedence order: the one list.

Every instrumentation names the same facts differently (OpenTelemetry GenAI old and new,
OpenInference, OpenLLMetry/Traceloop, Vercel AI SDK, Logfire/Pydantic AI, Langfuse). This
module is the single place that says, per normalised field, which keys are read and which
wins (the first one present). `normalise` generates its SQL from these tables,
`stepscope attributes --unmapped` reports every key that is in none of them, and
docs/steps.md describes them. Checked against the packages named in docs/steps.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One attribute as a source of a field.

    `json_path`: the value is JSON text and the field is at this path (e.g. Langfuse's
    usage details); a value that is not JSON is taken as it is, unless `json_only` (the
    plain value means something else: message text is no finish reason). `only_kind`:
    the key counts only on steps of that kind, because its meaning depends on it
    (Traceloop's `traceloop.entity.name` names a tool on a tool span and an agent on an
    agent span).
    """

    name: str
    json_path: str | None = None
    only_kind: str | None = None
    json_only: bool = False


def keys(*names: str) -> tuple[Key, ...]:
    return tuple(Key(n) for n in names)


# -- step kind ------------------------------------------------------------------------
# (attribute, {lower-cased value: step kind}). The first attribute whose value is known
# decides; `operation` keeps the raw value of the first of these attributes present.
# GENERIC values say nothing about the step, so they leave the decision to what follows
# (span name, model or agent keys, root span = workflow, else other).
GENERIC = None
_LLM_OPS = {
    "chat": "llm", "text_completion": "llm", "completion": "llm", "generate_content": "llm",
    "responses": "llm", "response": "llm", "llm_request": "llm", "model_request": "llm",
}
KIND_SOURCES: tuple[tuple[str, dict[str, str | None]], ...] = (
    ("gen_ai.operation.name", {
        **_LLM_OPS,
        "embeddings": "embedding", "embedding": "embedding",
        "execute_tool": "tool",
        "invoke_agent": "agent",
        "create_agent": "other",      # provisions an agent; runs nothing
        "agent_step": "workflow",     # AI SDK v7: one model call + its tools inside a run
        "invoke_workflow": "workflow", "execute_task": "workflow",
        "retrieval": "retrieval", "vector_db_retrieve": "retrieval", "vectordb": "retrieval",
        "rerank": "retrieval",
        "decide": "other",
    }),
    ("openinference.span.kind", {
        "llm": "llm", "embedding": "embedding", "tool": "tool", "agent": "agent",
        "chain": "workflow", "retriever": "retrieval", "reranker": "retrieval",
        "guardrail": "guardrail", "evaluator": "evaluator",
        "prompt": "other", "decision": "other", "unknown": GENERIC,
    }),
    ("traceloop.span.kind", {
        "workflow": "workflow", "task": "workflow", "agent": "agent", "tool": "tool",
        "unknown": GENERIC,
    }),
    ("langfuse.observation.type", {
        "generation": "llm", "embedding": "embedding", "agent": "agent", "tool": "tool",
        "chain": "workflow", "retriever": "retrieval", "evaluator": "evaluator",
        "guardrail": "guardrail", "span": GENERIC, "event": "other",
    }),
    # Traceloop LLM spans up to openai-instrumentation 0.54 carry only this.
    ("llm.request.type", {
        "chat": "llm", "completion": "llm", "unknown": "llm",
        "embedding": "embedding", "rerank": "retrieval",
    }),
    # Vercel AI SDK v4-v6 (span name = operation id).
    ("ai.operationId", {
        "ai.generatetext.dogenerate": "llm", "ai.streamtext.dostream": "llm",
        "ai.generateobject.dogenerate": "llm", "ai.streamobject.dostream": "llm",
        "ai.generatetext": "agent", "ai.streamtext": "agent",
        "ai.generateobject": "agent", "ai.streamobject": "agent",
        "ai.toolcall": "tool",
        "ai.embed.doembed": "embedding", "ai.embedmany.doembed": "embedding",
        "ai.embed": "workflow", "ai.embedmany": "workflow",
        "ai.rerank.dorerank": "retrieval", "ai.rerank": "retrieval",
    }),
)

# When no kind attribute decides: the span name, lower-cased, as a whole, then its first
# word (OpenTelemetry GenAI names spans "<operation> <model or tool or agent>").
NAME_KINDS: dict[str, str] = {
    "ai.generatetext.dogenerate": "llm", "ai.streamtext.dostream": "llm",
    "ai.generateobject.dogenerate": "llm", "ai.streamobject.dostream": "llm",
    "ai.embed.doembed": "embedding", "ai.embedmany.doembed": "embedding",
    "ai.toolcall": "tool",
    "ai.generatetext": "agent", "ai.streamtext": "agent", "ai.generateobject": "agent",
    "ai.streamobject": "agent",
    "running tool": "tool", "agent run": "agent",              # Pydantic AI v2
}
NAME_FIRST_WORD_KINDS: dict[str, str] = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm",
    "embeddings": "embedding", "execute_tool": "tool", "invoke_agent": "agent",
    "invoke_workflow": "workflow",
}
# Still undecided: a span naming an agent (and no model) is an agent step; one naming a
# model is a model call. Anything else is `other`.
AGENT_HINT_KEYS = keys("gen_ai.agent.name", "agent_name")

# -- models, provider -------------------------------------------------------------------
REQUEST_MODEL = (
    *keys("gen_ai.request.model", "llm.request.model_name", "ai.model.id", "llm.request.model"),
    # OpenInference keeps the request model only inside the invocation parameters.
    Key("llm.invocation_parameters", json_path="$.model"),
    Key("embedding.invocation_parameters", json_path="$.model"),
    *keys("reranker.model_name", "langfuse.observation.model.name"),
)
# OpenInference's llm.model_name / embedding.model_name hold the model that answered.
RESPONSE_MODEL = keys(
    "gen_ai.response.model", "llm.response.model_name", "llm.model_name",
    "embedding.model_name", "ai.response.model", "llm.response.model",
)
PROVIDER = keys(
    "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system",
    "ai.model.provider", "llm.vendor",
)
# Applied after lower-casing: Vercel's "<provider>.<api>" loses the API part, then aliases.
PROVIDER_API_SUFFIX = (
    r"\.(chat|completion|completions|responses|messages|embedding|textembedding"
    r"|generative-ai|image|transcription|speech)$"
)
PROVIDER_ALIASES: dict[str, str] = {
    "xai": "x_ai",
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "mistralai": "mistral_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "amazon-bedrock": "aws.bedrock",
}

# -- tokens (model-call steps only) -----------------------------------------------------
INPUT_TOKENS = keys(
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
    "ai.usage.inputTokens", "ai.usage.promptTokens", "llm.usage.prompt_tokens",
    "ai.usage.tokens",                   # Vercel embeddings
)
OUTPUT_TOKENS = keys(
    "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
    "llm.token_count.completion", "ai.usage.outputTokens", "ai.usage.completionTokens",
    "llm.usage.completion_tokens",
)
CACHED_INPUT_TOKENS = keys(
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read", "ai.usage.inputTokenDetails.cacheReadTokens",
    "ai.usage.cachedInputTokens",
)
CACHE_WRITE_TOKENS = (
    *keys("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
          "gen_ai.usage.cache_write.input_tokens", "llm.token_count.prompt_details.cache_write",
          "ai.usage.inputTokenDetails.cacheWriteTokens"),
    # Vercel AI SDK v5 Anthropic provider: only in the provider metadata.
    Key("ai.response.providerMetadata", json_path="$.anthropic.cacheCreationInputTokens"),
)
REASONING_TOKENS = keys(
    "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning",
    "ai.usage.reasoningTokens", "ai.usage.outputTokenDetails.reasoningTokens",
)
# Vercel AI SDK v6 splits input; its total already includes the cache.
VERCEL_NO_CACHE_TOKENS = Key("ai.usage.inputTokenDetails.noCacheTokens")
# Vercel AI SDK v5 with an Anthropic model reports input WITHOUT cache reads/writes.
VERCEL_PROVIDER = Key("ai.model.provider")

# Langfuse: one JSON object per span. Its "input" excludes cached input (Langfuse prices
# each usage type separately); raw OpenAI usage ("prompt_tokens") includes it.
LANGFUSE_USAGE = "langfuse.observation.usage_details"
LANGFUSE_USAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "input_disjoint": ("input", "input_tokens"),
    "input_inclusive": ("prompt_tokens",),
    "output": ("output", "output_tokens", "completion_tokens"),
    "cache_read": ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read",
                   "cached_tokens"),
    "cache_write": ("cache_creation_input_tokens", "input_cache_creation",
                    "cache_write_input_tokens"),
    "reasoning": ("output_reasoning_tokens", "reasoning_tokens", "output_reasoning"),
}

# -- timing, finish, cost ---------------------------------------------------------------
TTFT_SECONDS = keys("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token")
TTFT_MILLISECONDS = keys("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
LANGFUSE_COMPLETION_START = Key("langfuse.observation.completion_start_time")

FINISH_REASON = (
    Key("gen_ai.response.finish_reasons", json_path="$[0]"),     # string[] as JSON
    *keys("llm.finish_reason", "ai.response.finishReason", "gen_ai.completion.0.finish_reason",
          "llm.response.finish_reason", "gen_ai.response.finish_reason"),
    Key("gen_ai.output.messages", json_path="$[0].finish_reason", json_only=True),
)
# Normalised spellings (after lower-casing and '-' -> '_').
FINISH_ALIASES: dict[str, str] = {"tool_calls": "tool_call", "function_call": "tool_call"}

REPORTED_COST = (
    *keys("llm.cost.total", "operation.cost", "gen_ai.usage.cost"),
    Key("langfuse.observation.cost_details", json_path="$.total"),
)

# -- tools, agents, sessions, users -----------------------------------------------------
TOOL_NAME = (*keys("gen_ai.tool.name", "tool.name", "ai.toolCall.name"),
             Key("traceloop.entity.name", only_kind="tool"))
TOOL_CALL_ID = keys("gen_ai.tool.call.id", "tool.id", "tool_call.id", "ai.toolCall.id",
                    "tool_call_id")
AGENT_NAME = (*keys("gen_ai.agent.name", "agent.name"),
              Key("traceloop.entity.name", only_kind="agent"), *keys("agent_name"))
SESSION_ID = keys("gen_ai.conversation.id", "session.id",
                  "traceloop.association.properties.session_id",
                  "ai.telemetry.metadata.sessionId", "langfuse.session.id")
USER_ID = keys("user.id", "enduser.id", "traceloop.association.properties.user_id",
               "ai.telemetry.metadata.userId", "langfuse.user.id")

# -- errors -----------------------------------------------------------------------------
ERROR_TYPE = keys("error.type")
HTTP_STATUS = keys("http.response.status_code", "http.status_code")
# "Error code: 429 - {...}" (openai/anthropic clients), "status code 503", "HTTP 500".
HTTP_STATUS_IN_MESSAGE = r"(?i)\b(?:error code|status code|status|http)[: =]+([1-5][0-9][0-9])\b"
# Client exception classes that always mean one status (OpenAI and Anthropic SDKs).
HTTP_STATUS_OF_ERROR_CLASS: dict[str, int] = {
    "BadRequestError": 400, "AuthenticationError": 401, "PermissionDeniedError": 403,
    "NotFoundError": 404, "ConflictError": 409, "UnprocessableEntityError": 422,
    "RateLimitError": 429, "OverloadedError": 529,
}
LANGFUSE_LEVEL = Key("langfuse.observation.level")
LANGFUSE_STATUS_MESSAGE = Key("langfuse.observation.status_message")

# -- service (resource attributes first, then span attributes) ----------------------------
SERVICE_NAME = keys("service.name")
SERVICE_VERSION = keys("service.version")
ENVIRONMENT = keys("deployment.environment.name", "deployment.environment")
SPAN_ENVIRONMENT = keys("deployment.environment.name", "deployment.environment",
                        "langfuse.environment", "gen_ai.environment")

# -- content ----------------------------------------------------------------------------
# Message lists as JSON: the text parts are extracted (OTel GenAI shape, Vercel shape).
INPUT_MESSAGES_JSON = keys("gen_ai.input.messages", "ai.prompt.messages")
OUTPUT_MESSAGES_JSON = keys("gen_ai.output.messages")
MESSAGE_TEXT_PATHS = ("$[*].parts[*].content", "$[*].content[*].text", "$[*].content")
# Flattened per-message keys: every key matching is joined in attribute order.
INPUT_FLAT = (r"^llm\.input_messages\.\d+\.message\.content$",
              r"^embedding\.embeddings\.\d+\.embedding\.text$",
              r"^llm\.input_messages\.\d+\.message\.contents\.\d+\.message_content\.text$",
              r"^gen_ai\.prompt\.\d+\.content$",
              r"^llm\.prompts\.\d+\.prompt\.text$")
OUTPUT_FLAT = (r"^llm\.output_messages\.\d+\.message\.content$",
               r"^llm\.output_messages\.\d+\.message\.contents\.\d+\.message_content\.text$",
               r"^gen_ai\.completion\.\d+\.content$",
               r"^llm\.choices\.\d+\.completion\.text$")
# Whole values, after the above.
INPUT_TEXT = (Key("ai.prompt", json_path="$.prompt"), Key("ai.prompt"),
              *keys("langfuse.observation.input", "input.value", "traceloop.entity.input",
                    "gen_ai.prompt"))
OUTPUT_TEXT = keys("ai.response.text", "ai.response.object", "ai.response.toolCalls",
                   "langfuse.observation.output", "output.value", "traceloop.entity.output",
                   "gen_ai.completion")
# Content events (`event_attr_*`: "<event name>.<attribute>"): old GenAI events.
INPUT_EVENT_KEYS = (r"^gen_ai\.content\.prompt\.gen_ai\.prompt$",
                    r"^gen_ai\.(system|user|assistant|tool)\.message\.(content|body)$")
OUTPUT_EVENT_KEYS = (r"^gen_ai\.content\.completion\.gen_ai\.completion$",
                     r"^gen_ai\.choice\.(message|content|body)$")

# Keys whose value is prompt/completion content: removed from the map under `drop`.
CONTENT_KEYS = (
    r"^gen_ai\.(input|output)\.messages$", r"^gen_ai\.system_instructions$",
    r"^gen_ai\.(prompt|completion)(\..*)?$", r"^gen_ai\.tool\.call\.(arguments|result)$",
    r"^gen_ai\.tool\.definitions$",
    r"^(input|output)\.value$", r"^llm\.(input|output)_messages\..*",
    r"^llm\.(prompts|choices)\..*", r"^llm\.prompt_template\.(template|variables)$",
    r"^retrieval\.documents\..*\.document\.content$",
    r"^embedding\.embeddings\..*\.(text|vector)$",
    r"^ai\.prompt(\..*)?$", r"^ai\.response\.(text|object|toolCalls|reasoning)$",
    r"^ai\.toolCall\.(args|result)$", r"^ai\.values$", r"^ai\.value$",
    r"^traceloop\.entity\.(input|output)$",
    r"^langfuse\.(observation|trace)\.(input|output)$",
    r"^(tool_arguments|tool_response|final_result|pydantic_ai\.all_messages)$",
    r"^tool\.parameters$", r"^llm\.request\.functions\..*",
)

# Keys that carry no meaning for stepscope's fields, so `--unmapped` does not list them:
# request parameters, response ids, transport, code location and SDK bookkeeping.
GENERIC_KEYS = (
    r"^gen_ai\.request\.", r"^gen_ai\.response\.id$", r"^gen_ai\.output\.type$",
    r"^gen_ai\.(tool\.(type|description)|agent\.(id|description|version)|data_source\.id)$",
    r"^gen_ai\.usage\.total_tokens$", r"^llm\.token_count\.total$", r"^llm\.usage\.total_tokens$",
    r"^gen_ai\.(is_streaming|headers|embeddings\.dimension\.count|openai\..*)$",
    r"^ai\.usage\.totalTokens$", r"^llm\.is_streaming$", r"^llm\.headers$",
    r"^(server|client|network|net|http|url|user_agent|rpc|db|messaging|thread|code|process"
    r"|exception|otel|telemetry|logfire|openai|openinference\.instrumentation)\.",
    r"^(input|output)\.mime_type$", r"^llm\.(tools|request\.functions)\..*",
    r"^ai\.(operationId|settings|telemetry\.functionId|request\.headers|response\.(id|timestamp"
    r"|providerMetadata|msToFinish|avgOutputTokensPerSecond|avgCompletionTokensPerSecond))",
    r"^operation\.name$", r"^resource\.name$", r"^metadata$", r"^tag\.tags$",
    r"^langfuse\.(trace\.(name|tags|metadata\..*|public)|release|version|observation\.("
    r"metadata\..*|model\.parameters|prompt\.(name|version)))$",
    r"^traceloop\.(entity\.(path|version)|association\.properties\..*)$",
)


def all_mapped_keys() -> tuple[str, ...]:
    """Every attribute key some field reads (exact names), for `--unmapped`."""
    names: list[str] = [key for key, _ in KIND_SOURCES]
    groups = (
        AGENT_HINT_KEYS, REQUEST_MODEL, RESPONSE_MODEL, PROVIDER, INPUT_TOKENS, OUTPUT_TOKENS,
        CACHED_INPUT_TOKENS, CACHE_WRITE_TOKENS, REASONING_TOKENS, TTFT_SECONDS,
        TTFT_MILLISECONDS, FINISH_REASON, REPORTED_COST, TOOL_NAME, TOOL_CALL_ID, AGENT_NAME,
        SESSION_ID, USER_ID, ERROR_TYPE, HTTP_STATUS, SERVICE_NAME, SERVICE_VERSION,
        ENVIRONMENT, SPAN_ENVIRONMENT, INPUT_MESSAGES_JSON, OUTPUT_MESSAGES_JSON, INPUT_TEXT,
        OUTPUT_TEXT,
    )
    for group in groups:
        names.extend(k.name for k in group)
    names.extend(k.name for k in (VERCEL_NO_CACHE_TOKENS, VERCEL_PROVIDER,
                                  LANGFUSE_COMPLETION_START, LANGFUSE_LEVEL,
                                  LANGFUSE_STATUS_MESSAGE))
    names.append(LANGFUSE_USAGE)
    return tuple(dict.fromkeys(names))


def mapped_key_patterns() -> tuple[str, ...]:
    """Regexes of keys read by pattern (flattened messages) or stored as content."""
    return INPUT_FLAT + OUTPUT_FLAT + CONTENT_KEYS


def combined(patterns: tuple[str, ...]) -> str:
    """One regex matching any of `patterns` (each is checked to compile)."""
    for p in patterns:
        re.compile(p)
    return "|".join(f"(?:{p})" for p in patterns)
