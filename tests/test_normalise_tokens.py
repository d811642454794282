"""Tokens are counted once per model call: cached input inside input, never on parents."""

from __future__ import annotations

import json

from normalise_helpers import by_name, one, steps
from otlp_builders import SPAN_KIND_CLIENT, span

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                 "reasoning_tokens")


def tokens(row: dict) -> tuple:
    return tuple(row[c] for c in TOKEN_COLUMNS)


def chat(**attributes) -> list:
    return [span("chat m", trace=1, span=1, kind=SPAN_KIND_CLIENT,
                 attributes={"gen_ai.operation.name": "chat", **attributes})]


def test_cached_input_is_counted_inside_input_once():
    row = one(chat(**{"gen_ai.usage.input_tokens": 1200,
                      "gen_ai.usage.cache_read.input_tokens": 1000,
                      "gen_ai.usage.output_tokens": 50}))
    assert tokens(row) == (1200, 50, 1000, None, None)


def test_input_reported_without_cache_gets_the_cache_added():
    # Anthropic's own usage numbers: input_tokens excludes cache reads and writes. A
    # cache larger than the input proves the input left it out.
    row = one(chat(**{"gen_ai.usage.input_tokens": 12,
                      "gen_ai.usage.cache_read_input_tokens": 2000,
                      "gen_ai.usage.cache_creation_input_tokens": 300,
                      "gen_ai.usage.output_tokens": 40}))
    assert tokens(row) == (2312, 40, 2000, 300, None)


def test_reasoning_is_part_of_output():
    inside = one(chat(**{"gen_ai.usage.output_tokens": 900,
                         "gen_ai.usage.reasoning.output_tokens": 700}))
    apart = one(chat(**{"gen_ai.usage.output_tokens": 30,
                        "gen_ai.usage.reasoning_tokens": 200}))
    assert (inside["output_tokens"], inside["reasoning_tokens"]) == (900, 700)
    assert (apart["output_tokens"], apart["reasoning_tokens"]) == (230, 200)


def test_totals_repeated_on_parent_spans_are_not_counted():
    rows = steps([
        span("invoke_agent support", trace=1, span=1, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 500}),
        span("plan.task", trace=1, span=2, parent=1, attributes={
            "traceloop.span.kind": "task", "gen_ai.usage.input_tokens": 600,
            "gen_ai.usage.output_tokens": 60}),
        span("chat a", trace=1, span=3, parent=2, kind=SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 600,
            "gen_ai.usage.output_tokens": 60, "gen_ai.usage.cache_read.input_tokens": 500}),
        span("chat b", trace=1, span=4, parent=1, kind=SPAN_KIND_CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 400,
            "gen_ai.usage.output_tokens": 40}),
        span("execute_tool search", trace=1, span=5, parent=1, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.usage.input_tokens": 7}),
    ])
    named = by_name(rows)
    assert tokens(named["invoke_agent support"]) == (None,) * 5
    assert tokens(named["plan.task"]) == (None,) * 5
    assert tokens(named["execute_tool search"]) == (None,) * 5
    assert sum(r["input_tokens"] or 0 for r in rows) == 1000
    assert sum(r["output_tokens"] or 0 for r in rows) == 100
    assert sum(r["cached_input_tokens"] or 0 for r in rows) == 500
    # The totals stay visible in the attribute map.
    assert dict(named["invoke_agent support"]["attributes"])["gen_ai.usage.input_tokens"] == "1000"


def test_reported_cost_is_kept_on_model_calls_not_on_agent_totals():
    rows = by_name(steps([
        span("agent run", trace=1, span=1, attributes={"agent_name": "a", "operation.cost": 0.5}),
        span("chat x", trace=1, span=2, parent=1, attributes={
            "gen_ai.operation.name": "chat", "operation.cost": 0.5}),
    ]))
    assert rows["agent run"]["reported_cost_usd"] is None
    assert rows["chat x"]["reported_cost_usd"] == 0.5


def test_embeddings_count_input_tokens():
    rows = steps([
        span("embeddings text-embedding-3-small", trace=1, span=1, attributes={
            "gen_ai.operation.name": "embeddings", "gen_ai.usage.input_tokens": 15}),
        span("CreateEmbeddings", trace=1, span=2, attributes={
            "openinference.span.kind": "EMBEDDING", "llm.token_count.prompt": 9,
            "llm.token_count.total": 9}),
    ])
    assert [(r["step_kind"], tokens(r)) for r in rows] == [
        ("embedding", (15, None, None, None, None)), ("embedding", (9, None, None, None, None))]


def test_langfuse_usage_details_input_excludes_cache_but_prompt_tokens_include_it():
    rows = steps([
        span("gen a", trace=1, span=1, attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 10, "output": 5, "input_cached_tokens": 90})}),
        span("gen b", trace=1, span=2, attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": json.dumps(
                {"prompt_tokens": 100, "completion_tokens": 5})}),
    ])
    assert [tokens(r) for r in rows] == [(100, 5, 90, None, None), (100, 5, None, None, None)]


def test_failed_call_without_usage_has_no_tokens():
    row = one(chat(**{"error.type": "RateLimitError"}))
    assert tokens(row) == (None,) * 5


def test_non_numeric_token_values_are_null_not_errors():
    row = one(chat(**{"gen_ai.usage.input_tokens": "n/a", "gen_ai.usage.output_tokens": 3.0}))
    assert (row["input_tokens"], row["output_tokens"]) == (None, 3)
