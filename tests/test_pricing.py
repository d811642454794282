"""The price table: library prices, tiers, price changes, time-of-day prices and user prices.

Literal rates are those of the genai-prices snapshot for long-stable prices (gpt-4o,
Claude Sonnet 4.5 and its long-context tier, o3's June 2025 cut); the full agreement with
the library's own calculation is checked in test_pricing_library_agreement.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from stepscope.analytics.pricing import (
    LIBRARY,
    NS_MAX,
    NS_MIN,
    TOKENS_BELOW_ANY,
    PriceKey,
    build_price_table,
    describe_price_table,
    model_price_at,
    price_rows,
)
from stepscope.config import Config, config_from_dict


def day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def rates(row):
    return (row.rates.input_per_mtok, row.rates.output_per_mtok,
            row.rates.cache_read_per_mtok, row.rates.cache_write_per_mtok)


def test_library_price_with_its_source():
    (row,) = price_rows(PriceKey("openai", "gpt-4o", None), Config())
    assert rates(row) == (2.5, 10.0, 1.25, None)
    assert row.source == f"{LIBRARY}: openai gpt-4o"
    assert (row.valid_from_ns, row.valid_to_ns) == (NS_MIN, NS_MAX)


def test_dated_response_model_is_matched_first():
    (row,) = price_rows(PriceKey("openai", "gpt-4o", "gpt-4o-mini-2024-07-18"), Config())
    assert row.priced_model == "gpt-4o-mini"
    assert row.source == f"{LIBRARY}: openai gpt-4o-mini"


def test_long_context_tier_is_a_row_of_its_own():
    base, tier = price_rows(PriceKey("anthropic", "claude-sonnet-4-5-20250929", None), Config())
    assert (base.input_above, base.input_upto) == (TOKENS_BELOW_ANY, 200_000)
    assert rates(base) == (3.0, 15.0, 0.3, 3.75)
    assert (tier.input_above, tier.input_upto) == (200_000, 2**63 - 1)
    assert rates(tier) == (6.0, 22.5, 0.6, 7.5)
    assert tier.source == f"{LIBRARY}: anthropic claude-sonnet-4-5 (>200000 input tokens)"


def test_a_price_change_splits_the_timeline_at_its_start_date():
    before, after = price_rows(PriceKey("openai", "o3", None), Config())
    assert (before.valid_from_ns, before.valid_to_ns) == (NS_MIN, day_ns(date(2025, 6, 10)))
    assert (after.valid_from_ns, after.valid_to_ns) == (day_ns(date(2025, 6, 10)), NS_MAX)
    assert rates(before)[:2] == (10.0, 40.0)
    assert rates(after)[:2] == (2.0, 8.0)
    assert after.source == f"{LIBRARY}: openai o3 (from 2025-06-10)"


def test_time_of_day_prices_cover_the_whole_day_without_overlap():
    rows = price_rows(PriceKey("deepseek", "deepseek-chat", None), Config())
    windows = sorted((r.day_from_s, r.day_to_s) for r in rows if r.valid_to_ns == NS_MAX)
    assert windows[0][0] == 0 and windows[-1][1] == 86_400
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert any("UTC)" in (r.source or "") for r in rows)


def test_unknown_model_has_one_row_without_a_price():
    (row,) = price_rows(PriceKey("acme", "acme-ft-support-v3", None), Config())
    assert row.source is None
    assert rates(row) == (None, None, None, None)
    assert (row.valid_from_ns, row.valid_to_ns) == (NS_MIN, NS_MAX)


@pytest.mark.parametrize(("provider", "model", "priced_provider"), [
    ("x_ai", "grok-3", "x-ai"),                     # semconv spelling of xAI
    ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "aws"),
    ("azure.ai.openai", "gpt-4o", "azure"),
    (None, "claude-3-5-haiku-20241022", "anthropic"),   # inferred from the model
])
def test_provider_from_the_step_else_inferred_from_the_model(provider, model, priced_provider):
    rows = price_rows(PriceKey(provider, model, None), Config())
    assert rows[0].source is not None
    assert rows[0].priced_provider == priced_provider


def user_config(*prices):
    return config_from_dict({"prices": list(prices)}, source="/etc/stepscope/stepscope.toml")


def test_user_price_wins_from_its_effective_date_and_history_keeps_the_library_price():
    config = user_config({"match": "gpt-4o", "input_per_mtok": 2.0, "output_per_mtok": 8.0,
                          "effective_from": "2026-10-01", "effective_to": "2027-01-01"})
    before, user, after = price_rows(PriceKey("openai", "gpt-4o", None), config)
    assert (before.valid_to_ns, user.valid_from_ns) == (day_ns(date(2026, 10, 1)),) * 2
    assert (user.valid_to_ns, after.valid_from_ns) == (day_ns(date(2027, 1, 1)),) * 2
    assert rates(before) == rates(after) == (2.5, 10.0, 1.25, None)
    assert rates(user) == (2.0, 8.0, None, None)
    assert user.source == "stepscope.toml prices[0]: gpt-4o"


def test_glob_regex_and_provider_matches():
    config = user_config(
        {"match": "gpt-4o", "input_per_mtok": 1.0, "output_per_mtok": 1.0, "provider": "azure"},
        {"match": "acme-ft-*", "match_type": "glob", "input_per_mtok": 3.0,
         "output_per_mtok": 12.0, "cached_input_per_mtok": 0.3},
        {"match": r"helpwise-(caption|summary)-v\d+", "match_type": "regex",
         "input_per_mtok": 0.5, "output_per_mtok": 1.5},
    )
    # prices[0] is for Azure only: OpenAI's gpt-4o keeps the library price
    assert price_rows(PriceKey("openai", "gpt-4o", None), config)[0].source.startswith(LIBRARY)
    assert price_rows(PriceKey("azure.ai.openai", "gpt-4o", None), config)[0].source == \
        "stepscope.toml prices[0]: gpt-4o"
    (ft,) = price_rows(PriceKey("acme", "ACME-FT-support-v3", None), config)
    assert rates(ft) == (3.0, 12.0, 0.3, None)
    assert price_rows(PriceKey(None, "helpwise-caption-v2", None), config)[0].source == \
        r"stepscope.toml prices[2]: helpwise-(caption|summary)-v\d+"
    # a regex must match the whole name
    assert price_rows(PriceKey(None, "helpwise-caption-v2-beta", None), config)[0].source is None


def test_the_first_matching_user_price_wins_where_several_overlap():
    config = user_config(
        {"match": "acme-*", "match_type": "glob", "input_per_mtok": 1.0, "output_per_mtok": 1.0,
         "effective_from": "2026-11-01"},
        {"match": "acme-ft", "input_per_mtok": 9.0, "output_per_mtok": 9.0},
    )
    older, newer = price_rows(PriceKey(None, "acme-ft", None), config)
    assert (older.rates.input_per_mtok, older.valid_to_ns) == (9.0, day_ns(date(2026, 11, 1)))
    assert (newer.rates.input_per_mtok, newer.valid_from_ns) == (1.0, day_ns(date(2026, 11, 1)))


def test_gaps_no_price_covers_are_unpriced_rows():
    config = user_config({"match": "acme-ft", "input_per_mtok": 1.0, "output_per_mtok": 1.0,
                          "effective_from": "2026-11-01"})
    gap, user = price_rows(PriceKey(None, "acme-ft", None), config)
    assert gap.source is None and (gap.valid_from_ns, gap.valid_to_ns) == (
        NS_MIN, day_ns(date(2026, 11, 1)))
    assert user.source == "stepscope.toml prices[0]: acme-ft"


def test_table_ids_are_stable_across_sets_of_keys():
    a = build_price_table([PriceKey("openai", "gpt-4o", None)], Config())
    b = build_price_table([PriceKey("openai", "o3", None), PriceKey("openai", "gpt-4o", None)],
                          Config())
    ids_a = set(a.column("price_id").to_pylist())
    assert ids_a <= set(b.column("price_id").to_pylist())
    assert isinstance(a, pa.Table) and a.num_rows == 1


def test_described_table_reads_as_dates_and_names_unpriced_models():
    table = build_price_table([PriceKey("openai", "o3", None), PriceKey(None, "mystery", None)],
                              Config())
    rows = describe_price_table(table).to_dicts()
    o3 = [r for r in rows if r["request_model"] == "o3"]
    assert [(r["effective_from"], r["effective_to"]) for r in o3] == [
        (None, date(2025, 6, 10)), (date(2025, 6, 10), None)]
    (mystery,) = [r for r in rows if r["request_model"] == "mystery"]
    assert mystery["price_source"] == "unpriced: no price known"
    assert mystery["provider"] is None


def test_model_price_at_an_instant():
    at = datetime(2026, 11, 17, tzinfo=UTC)
    assert model_price_at("anthropic", "claude-sonnet-4-5", at, Config(),
                          input_tokens=250_000)["input_per_mtok"] == 6.0
    assert model_price_at(None, "mystery", at, Config()) is None
