"""Costs priced in SQL from the price table equal genai-prices' own calculation.

Each call below is ingested as its own run; its cost from `find_traces` must match
`genai_prices.calc_price` for the same usage, model, provider and time: cached input,
cache writes, long-context tiers, price changes over time and off-peak hours included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import genai_prices
import pytest
from analytics_store import llm, make_store, root, tid

from stepscope.analytics.explore import find_traces

CALLS = [
    # (name, provider on the span, genai-prices provider, request model, response model,
    #  input, cached read, cache write, output, when)
    ("gpt4o", "openai", "openai", "gpt-4o", None, 1000, 400, None, 100,
     datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("mini", "openai", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 5000, 1000, None, 700,
     datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("sonnet-short", "anthropic", "anthropic", "claude-sonnet-4-5-20250929", None, 100_000,
     20_000, 5_000, 2_000, datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("sonnet-long", "anthropic", "anthropic", "claude-sonnet-4-5-20250929", None, 250_000,
     50_000, 10_000, 2_000, datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("opus-before", "anthropic", "anthropic", "claude-opus-4-6", None, 300_000, 0, 0, 1_000,
     datetime(2026, 1, 5, 12, tzinfo=UTC)),
    ("opus-after", "anthropic", "anthropic", "claude-opus-4-6", None, 300_000, 0, 0, 1_000,
     datetime(2026, 11, 17, 12, tzinfo=UTC)),
    ("o3-old", "openai", "openai", "o3", None, 10_000, None, None, 5_000,
     datetime(2025, 5, 1, 9, tzinfo=UTC)),
    ("o3-new", "openai", "openai", "o3", None, 10_000, None, None, 5_000,
     datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("deepseek-offpeak", "deepseek", "deepseek", "deepseek-chat", None, 40_000, 10_000, None,
     900, datetime(2026, 11, 17, 0, 10, tzinfo=UTC)),
    ("deepseek-peak", "deepseek", "deepseek", "deepseek-chat", None, 40_000, 10_000, None,
     900, datetime(2026, 11, 17, 9, 0, tzinfo=UTC)),
    ("deepseek-evening", "deepseek", "deepseek", "deepseek-chat", None, 40_000, 10_000, None,
     900, datetime(2026, 11, 17, 17, 0, tzinfo=UTC)),
    ("haiku-inferred", None, None, "claude-3-5-haiku-20241022", None, 8_000, 2_000, 3_000, 400,
     datetime(2026, 11, 17, 9, tzinfo=UTC)),
    ("grok", "x_ai", "x-ai", "grok-3", None, 3_000, None, None, 300,
     datetime(2026, 11, 17, 9, tzinfo=UTC)),
]


@pytest.fixture(scope="module")
def costs(tmp_path_factory):
    specs = []
    for name, provider, _, model, response, inp, cached, write, out, when in CALLS:
        specs += [root(name, "pricing", start=when),
                  llm(name, "call", model, provider=provider, response_model=response,
                      input_tokens=inp, cached_input_tokens=cached, cache_write_tokens=write,
                      output_tokens=out, start=when)]
    store = make_store(tmp_path_factory.mktemp("agreement") / "store", specs)
    with store.connect() as con:
        frame = find_traces(con, limit=1000)
    return dict(zip(frame["trace_id"], frame["cost_usd"], strict=True))


@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
def test_sql_cost_equals_genai_prices(costs, call):
    name, _, library_provider, model, response, inp, cached, write, out, when = call
    usage = genai_prices.Usage(input_tokens=inp, output_tokens=out,
                               cache_read_tokens=cached or 0, cache_write_tokens=write or 0)
    expected = genai_prices.calc_price(
        usage, response or model, provider_id=library_provider,
        genai_request_timestamp=when + timedelta(milliseconds=1),
    ).total_price
    assert costs[tid(name)] == pytest.approx(float(expected), rel=1e-9)


def test_the_calls_cover_distinct_prices(costs):
    """The cases differ where they should: tier, price change and off-peak hours."""
    assert costs[tid("sonnet-long")] / 250_000 > costs[tid("sonnet-short")] / 100_000
    assert costs[tid("o3-old")] > costs[tid("o3-new")]
    assert costs[tid("deepseek-peak")] > costs[tid("deepseek-offpeak")]
    assert costs[tid("deepseek-evening")] == pytest.approx(costs[tid("deepseek-offpeak")])
