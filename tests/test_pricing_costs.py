"""Costs of single model calls, worked out by hand, and repricing with user prices.

genai-prices rates used (USD per million tokens): gpt-4o 2.50 input, 1.25 cached input,
10 output; claude-3-5-haiku 0.80 input, 0.08 cache read, 1.00 cache write, 4 output.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from analytics_store import T0, add, llm, make_store, root, tid

from stepscope.analytics import Filters, kpis
from stepscope.analytics.explore import cost_breakdown, find_traces, price_table, trace_steps
from stepscope.config import Config, config_from_dict


def run_costs(con, config=None):
    frame = find_traces(con, limit=100, config=config)
    return dict(zip(frame["trace_id"], frame["cost_usd"], strict=True))


@pytest.fixture()
def store(tmp_path):
    return make_store(tmp_path / "store", [
        root("cached", "w"),
        llm("cached", "c", "gpt-4o", input_tokens=1000, cached_input_tokens=400, output_tokens=100),
        root("writes", "w"),
        llm("writes", "c", "claude-3-5-haiku-20241022", provider="anthropic", input_tokens=2000,
            cached_input_tokens=500, cache_write_tokens=1000, output_tokens=100),
        root("reasoning", "w"),
        llm("reasoning", "c", "gpt-4o", input_tokens=1000, output_tokens=300, reasoning_tokens=200),
        root("unknown", "w"),
        llm("unknown", "c", "acme-ft-support-v3", provider="acme", input_tokens=1000,
            output_tokens=100),
        root("no-usage", "w"),
        llm("no-usage", "c", "gpt-4o", input_tokens=None, output_tokens=None),
        root("failed-call", "w"),
        llm("failed-call", "c", "gpt-4o", input_tokens=None, output_tokens=None,
            error="RateLimitError"),
    ])


def test_cached_input_is_charged_at_the_cache_read_rate(store):
    with store.connect() as con:
        # 600 uncached x 2.50 + 400 cached x 1.25 + 100 output x 10 = 3000 per million
        assert run_costs(con)[tid("cached")] == pytest.approx(0.003)


def test_cache_writes_are_charged_at_the_cache_write_rate(store):
    with store.connect() as con:
        # 500 uncached x 0.80 + 500 read x 0.08 + 1000 written x 1.00 + 100 x 4 = 1840
        assert run_costs(con)[tid("writes")] == pytest.approx(0.00184)


def test_reasoning_tokens_are_part_of_output_and_counted_once(store):
    with store.connect() as con:
        # 1000 x 2.50 + 300 x 10 (200 of them reasoning, no separate rate for gpt-4o)
        assert run_costs(con)[tid("reasoning")] == pytest.approx(0.0055)


def test_unknown_model_is_unpriced_never_zero(store):
    with store.connect() as con:
        assert run_costs(con)[tid("unknown")] is None
        (step,) = trace_steps(con, tid("unknown")).filter(step_kind="llm").to_dicts()
        assert step["cost_usd"] is None and step["unpriced"] is True
        spend = cost_breakdown(con, bucket=None).filter(model="acme-ft-support-v3").row(0, named=True)
        assert spend["cost_usd"] is None and spend["unpriced_calls"] == 1


def test_a_successful_call_without_token_counts_is_unpriced_a_failed_one_costs_nothing(store):
    with store.connect() as con:
        steps = {r["trace_id"]: r for r in find_traces(con, limit=100).to_dicts()}
        assert steps[tid("no-usage")]["unpriced_calls"] == 1
        assert steps[tid("failed-call")]["unpriced_calls"] == 0
        assert steps[tid("failed-call")]["cost_usd"] is None


def test_group_cost_is_the_priced_part_with_the_unpriced_calls_counted(store):
    with store.connect() as con:
        row = kpis(con, by=()).row(0, named=True)
    assert row["cost_usd"] == pytest.approx(0.003 + 0.00184 + 0.0055)
    assert row["unpriced_llm_calls"] == 2                # unknown model, call without usage


def test_user_price_reprices_history_from_its_effective_date(tmp_path):
    before, after = T0 - timedelta(days=1), T0
    store = make_store(tmp_path / "store", [
        root("before", "w", start=before),
        llm("before", "c", "gpt-4o", input_tokens=1000, output_tokens=100, start=before),
        root("after", "w", start=after),
        llm("after", "c", "gpt-4o", input_tokens=1000, output_tokens=100, start=after),
    ])
    negotiated = config_from_dict({"prices": [
        {"match": "gpt-4o", "input_per_mtok": 1.0, "output_per_mtok": 5.0,
         "effective_from": after.date().isoformat()},
    ]}, source="stepscope.toml")
    with store.connect() as con:
        assert run_costs(con) == {tid("before"): pytest.approx(0.0035),
                                  tid("after"): pytest.approx(0.0035)}
        # the same connection, another price list: the stored tokens are priced again
        assert run_costs(con, negotiated) == {tid("before"): pytest.approx(0.0035),
                                              tid("after"): pytest.approx(0.0015)}
        sources = set(cost_breakdown(con, bucket="day", config=negotiated)["price_sources"])
    assert sources == {f"genai-prices {__import__('genai_prices').__version__}: openai gpt-4o",
                       "stepscope.toml prices[0]: gpt-4o"}


def test_effective_to_is_exclusive(tmp_path):
    store = make_store(tmp_path / "store", [
        root("day1", "w", start=T0), llm("day1", "c", "acme-ft", provider=None, start=T0),
        root("day2", "w", start=T0 + timedelta(days=1)),
        llm("day2", "c", "acme-ft", provider=None, start=T0 + timedelta(days=1)),
    ])
    config = config_from_dict({"prices": [
        {"match": "acme-ft", "input_per_mtok": 1.0, "output_per_mtok": 10.0,
         "effective_from": "2026-11-17", "effective_to": "2026-11-18"},
    ]})
    with store.connect() as con:
        costs = run_costs(con, config)
    assert costs == {tid("day1"): pytest.approx(0.002), tid("day2"): None}


def test_user_price_without_a_cached_rate_charges_cached_input_as_input(tmp_path):
    store = make_store(tmp_path / "store", [
        root("ft", "w"),
        llm("ft", "c", "acme-ft-v1", provider="acme", input_tokens=1000, cached_input_tokens=400,
            output_tokens=100),
    ])
    config = config_from_dict({"prices": [{"match": "acme-ft-*", "match_type": "glob",
                                           "input_per_mtok": 3.0, "output_per_mtok": 12.0}]})
    with store.connect() as con:
        assert run_costs(con, config)[tid("ft")] == pytest.approx(0.0042)


def test_reported_cost_is_shown_beside_ours_with_the_difference(tmp_path):
    store = make_store(tmp_path / "store", [
        root("r", "w"),
        llm("r", "c", "gpt-4o", input_tokens=1000, output_tokens=100, reported_cost_usd=0.004),
    ])
    with store.connect() as con:
        (step,) = trace_steps(con, tid("r")).filter(step_kind="llm").to_dicts()
        spend = cost_breakdown(con, bucket=None).row(0, named=True)
    assert (step["cost_usd"], step["reported_cost_usd"]) == (pytest.approx(0.0035), 0.004)
    assert step["reported_minus_ours_usd"] == pytest.approx(0.0005)
    assert spend["reported_minus_ours_usd"] == pytest.approx(0.0005)
    assert spend["cost_usd"] == pytest.approx(0.0035)   # ours, never the reported one


def test_price_table_lists_the_models_in_the_store_with_their_calls(store):
    with store.connect() as con:
        table = price_table(con)
    gpt = table.filter(request_model="gpt-4o").row(0, named=True)
    assert (gpt["calls"], gpt["input_per_mtok"], gpt["output_per_mtok"]) == (4, 2.5, 10.0)
    acme = table.filter(request_model="acme-ft-support-v3").row(0, named=True)
    assert acme["price_source"] == "unpriced: no price known"


def test_new_models_arriving_later_are_priced(tmp_path):
    store = make_store(tmp_path / "store", [root("a", "w"), llm("a", "c", "gpt-4o")])
    with store.connect() as con:
        assert kpis(con, by=())["cost_usd"].item() == pytest.approx(0.0035)
        add(store, [root("b", "w"), llm("b", "c", "gpt-4o-mini")])
        # 1000 x 0.15 + 100 x 0.60 = 210 per million
        assert kpis(con, by=())["cost_usd"].item() == pytest.approx(0.0035 + 0.00021)
        assert kpis(con, Filters(models=("gpt-4o-mini",)), by=())["runs"].item() == 1
    assert Config().prices == ()
