"""The two-sample tests, effect sizes, Holm correction and severities drift relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stepscope.analytics import drift_stats as ds


def _lognormal(seed: int, n: int, median: float) -> np.ndarray:
    return median * np.exp(0.5 * np.random.default_rng(seed).standard_normal(n))


def test_continuous_reports_the_ratio_of_the_summary_that_moved_most() -> None:
    result = ds.continuous([1, 2, 3, 4] * 10, [2, 4, 6, 8] * 10)
    assert result.test == "ks"
    assert result.ratio == pytest.approx(2.0)
    assert result.baseline["median"] == 2.5
    assert result.current["median"] == 5.0
    # numpy's default (linear) p95 of 1..4 repeated: the KPI definition.
    assert result.baseline["p95"] == pytest.approx(4.0)
    assert result.large_enough
    assert result.p_value < 1e-4


def test_continuous_needs_a_minimum_sample_on_both_sides() -> None:
    assert ds.continuous(range(1, 30), range(1, 100)) is None
    assert ds.continuous(range(1, 100), [1.0] * 29 + [math.nan] * 5) is None
    assert ds.continuous(range(1, 31), range(1, 31)) is not None


def test_same_distribution_is_neither_significant_nor_large() -> None:
    result = ds.continuous(_lognormal(1, 2000, 300), _lognormal(2, 500, 300))
    assert result.p_value > 0.01
    assert not result.large_enough


def test_a_small_but_significant_shift_is_not_large_enough() -> None:
    result = ds.continuous(_lognormal(1, 50_000, 300), _lognormal(2, 50_000, 330))
    assert result.p_value < 1e-10
    assert 1.05 < result.ratio < 1.15
    assert not result.large_enough


def test_rate_uses_fisher_on_small_counts_and_chi_square_otherwise() -> None:
    small = ds.rate(0, 40, 6, 40)
    assert small.test == "fisher"
    assert small.baseline["rate"] == 0.0 and small.current["rate"] == 0.15
    # Half an event on each side keeps the ratio finite: (6.5/41) / (0.5/41).
    assert small.ratio == pytest.approx(13.0)
    big = ds.rate(50, 1000, 150, 1000)
    assert big.test == "chi2"
    assert big.ratio == pytest.approx((150.5 / 1001) / (50.5 / 1001))
    assert big.large_enough


def test_rate_needs_a_material_absolute_change() -> None:
    # 0.2% -> 0.5% is a big ratio but under one percentage point.
    result = ds.rate(20, 10_000, 50, 10_000)
    assert result.ratio > 2
    assert not result.large_enough


def test_rate_without_enough_trials_or_events_is_not_tested() -> None:
    assert ds.rate(1, 29, 5, 100) is None
    assert ds.rate(1, 100, 2, 100) is None


def test_mix_reports_jensen_shannon_distance_and_shares() -> None:
    result = ds.mix({"gpt-4o-2024-08-06": 960}, {"gpt-4o-2024-11-20": 647})
    assert result.effect_size == pytest.approx(1.0)
    assert result.baseline["shares"] == {"gpt-4o-2024-08-06": 1.0}
    assert result.current["shares"] == {"gpt-4o-2024-11-20": 1.0}
    assert result.p_value < 1e-100
    same = ds.mix({"a": 500, "b": 500}, {"a": 251, "b": 249})
    assert same.effect_size < 0.01
    assert not same.large_enough
    assert same.p_value > 0.5


def test_mix_pools_rare_categories_and_one_category_is_no_change() -> None:
    assert ds.mix({"a": 100}, {"a": 40}).p_value == 1.0
    result = ds.mix({"a": 100, "b": 1}, {"a": 40, "c": 1})
    assert result.p_value > 0.5


def test_holm_adjustment() -> None:
    # Sorted: 0.001*4, 0.01*3, 0.03*2, 0.04*1, kept monotone.
    assert ds.holm([0.01, 0.04, 0.03, 0.001]) == pytest.approx([0.03, 0.06, 0.06, 0.004])
    assert ds.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert ds.holm([]) == []


def test_severity_follows_the_harmful_direction() -> None:
    doubled = ds.continuous([1, 2, 3, 4] * 10, [2, 4, 6, 8] * 10)
    assert ds.severity(doubled, worse_when_higher=True) == "critical"
    assert ds.severity(doubled, worse_when_higher=False) == "info"
    up_40 = ds.continuous([10.0] * 40, [14.0] * 40)
    assert ds.severity(up_40, worse_when_higher=True) == "warning"
    up_25 = ds.continuous([10.0] * 40, [12.5] * 40)
    assert ds.severity(up_25, worse_when_higher=True) == "info"
    swapped = ds.mix({"a": 100}, {"b": 100})
    assert ds.severity(swapped, worse_when_higher=None) == "critical"
